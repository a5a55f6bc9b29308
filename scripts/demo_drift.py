"""Scenario "new species arrive" (``make demo-drift`` = ``python -m scripts.demo_drift``).

On its own emulator and state (``.local/demo-drift/`` by default, so a ``make up`` stack is not
touched; the state of an earlier run is removed first): Terraform apply, a first champion
trained WITHOUT about 20 species, then four phases, each = ``producer`` puts
observations -> local Lambda runtime scores them -> the Firehose pump archives both streams
in S3 -> the lab's labels land in S3 -> one monitoring cycle by SQL over the archive, as on a
deployed stack, with the deployed stack's default promotion there: shadow
(``MONITORING_PROMOTION=shadow``; a model rollout, no Terraform):

1. known species: healthy, alarms OK;
2. the unseen species: unknown / false-edible rate breaches, the alarm fires, SNS publishes
   (observed through an SQS queue subscribed to the topic), retraining with the labelled
   phase-2 records registers a new version that passes the offline gate and starts as the
   SHADOW: it scores every record beside the champion and answers no one;
3. the same species again (other individuals): the champion still answers (``unknown``: do not
   eat), the shadow's verdicts, only in the output's ``shadow`` field, cover them; their labels
   arrive, and the cycle decides on the paired evidence (labelled, poisonous, false edible,
   McNemar's discordant pairs and p-value): the shadow is promoted;
4. the same species again (a third set of individuals): the promoted model serves, coverage
   recovers, alarms back to OK;
5. rollback drill: ``make rollback`` (the alias back to the version served before), records
   scored, then a roll forward to the champion and records scored again.

Every window prints what the alias ``live`` serves (Lambda version, model version, shadow) and
the verdicts it wrote, by served model version and by shadow model version.

Metric timestamps advance one alarm period per phase (a simulated clock, named as such in the
output and the reports), so the windows land in their own CloudWatch periods without
waiting minutes between phases. The windows' verdicts are cut at the real time (the Lambda
stamps ``scored_at`` with it), with no grace: the scenario runs the pump itself and writes
everything it buffers before each cycle. Prints the timeline and writes it to
``<reports>/demo-drift/timeline.json``; the timeline charts are
``<reports>/demo-drift/monitoring/index.html`` and ``timeline.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from config.settings import LOCAL_DIR, REPO_ROOT
from lambda_function import verdict_metrics as vm
from monitoring.report import DECISION_ACCURACY_NOTE, monitoring_ui_hint, write_timeline_png

ROOT = REPO_ROOT
DEFAULT_LOCAL_DIR = LOCAL_DIR / "demo-drift"
DEFAULT_REPORTS_DIR = ROOT / "reports" / "demo-drift"
# Run state a scenario creates under its local dir; removed first, so that every run starts
# from an empty registry (version 1 is the first champion) and an empty Terraform state.
RUN_STATE = (
    "mlflow",
    "bundles",
    "terraform",
    "lambda-runtime",
    "firehose-pump",
    "monitoring",
    "build",
)
SIMULATED_CLOCK = "simulated clock: demo-drift advances one alarm period per phase"


@dataclass
class Phase:
    name: str
    frame: pd.DataFrame
    description: str


@dataclass
class ScenarioResult:
    excluded_species: list[int]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    sns_messages: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)
    drill: list[dict[str, Any]] = field(default_factory=list)


def choose_species(frame: pd.DataFrame, count: int, seed: int) -> list[int]:
    """``count`` species, half poisonous-majority and half edible-majority where possible."""
    rng = np.random.default_rng(seed)
    share = frame.groupby("species_id")["label"].agg(lambda s: (s == "p").mean())
    poisonous = share[share >= 0.5].index.to_numpy()
    edible = share[share < 0.5].index.to_numpy()
    n_p = min(len(poisonous), count - count // 2)
    chosen = list(rng.choice(poisonous, n_p, replace=False)) + list(
        rng.choice(edible, count - n_p, replace=False)
    )
    return sorted(int(s) for s in chosen)


def build_phases(
    frame: pd.DataFrame, excluded: Sequence[int], per_phase: int, seed: int
) -> list[Phase]:
    """Known species; a third of the individuals of the unseen species; another third (scored
    with the shadow); the last third (after the promotion)."""
    rng = np.random.default_rng(seed)
    known = frame[~frame["species_id"].isin(excluded)]
    unseen = frame[frame["species_id"].isin(excluded)]
    # Per species, deal individuals into phases 2, 3 and 4 in turn, so retraining on phase 2
    # never sees the exact mushrooms the shadow and the promoted model score.
    order = unseen.groupby("species_id").cumcount()
    first, second, third = (unseen[order % 3 == n] for n in range(3))

    def sample(part: pd.DataFrame) -> pd.DataFrame:
        n = min(per_phase, len(part))
        return part.iloc[rng.choice(len(part), n, replace=False)].reset_index(drop=True)

    return [
        Phase("phase1-known", sample(known), "known species"),
        Phase("phase2-unseen", sample(first), f"{len(excluded)} species the model never saw"),
        Phase(
            "phase3-shadow",
            sample(second),
            "the same species, other individuals; the retrained model shadows the champion",
        ),
        Phase(
            "phase4-after-promotion",
            sample(third),
            "the same species, a third set of individuals; the promoted model serves",
        ),
    ]


def subscribe_observer(sns: Any, sqs: Any, topic_arn: str) -> str:
    """An SQS queue subscribed to the alert topic, to observe what SNS publishes."""
    url = sqs.create_queue(QueueName="demo-drift-alert-observer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = reply.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            body = json.loads(message["Body"])
            messages.append({"subject": body.get("Subject"), "message": body.get("Message")})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _apply_env(env: dict[str, str]) -> None:
    os.environ.update(env)


def fresh_state(local_dir: Path, reports_dir: Path) -> None:
    """Stop this scenario's own emulator if a ``--keep`` run left it up; remove its run state."""
    from emulation.emulator import stop_emulator  # noqa: PLC0415

    stop_emulator(local_dir)
    for name in RUN_STATE:
        shutil.rmtree(local_dir / name, ignore_errors=True)
    shutil.rmtree(reports_dir / "monitoring", ignore_errors=True)


def private_zip(lambda_zip: Path | None, local_dir: Path) -> Path:
    """The Lambda zip in this scenario's own directory.

    A zip under ``build/`` is replaced whenever someone runs ``make package``; the deploys of a
    running scenario must not depend on it (Terraform remembers the path).
    """
    from deployment.package_lambda import build_lambda_zip  # noqa: PLC0415

    build = local_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    if lambda_zip is None:
        return Path(build_lambda_zip(build))
    return Path(shutil.copy2(lambda_zip, build / Path(lambda_zip).name))


def run_scenario(
    local_dir: Path = DEFAULT_LOCAL_DIR,
    reports_dir: Path | None = None,
    per_phase: int = 1500,
    n_excluded: int = 20,
    seed: int = 7,
    lambda_zip: Path | None = None,
    keep: bool = False,
    say: Any = print,
) -> ScenarioResult:
    """Run the whole scenario on a fresh emulator under ``local_dir``; see the module docstring."""
    import boto3  # noqa: PLC0415

    import producer  # noqa: PLC0415
    from config.stack_env import read_stack_env  # noqa: PLC0415
    from deployment.deploy import terraform_apply  # noqa: PLC0415
    from emulation.emulator import start_emulator, stop_emulator  # noqa: PLC0415
    from emulation.firehose_pump import count_objects, make_pump  # noqa: PLC0415
    from emulation.lambda_runtime import run_until_idle  # noqa: PLC0415

    local_dir = Path(local_dir).resolve()
    reports_dir = Path(reports_dir or DEFAULT_REPORTS_DIR).resolve()
    local_dir.mkdir(parents=True, exist_ok=True)
    fresh_state(local_dir, reports_dir)
    emulator = start_emulator("moto", local_dir=local_dir)
    say(f"[demo-drift] emulator {emulator.endpoint} (state in {local_dir})")
    try:
        _apply_env(read_stack_env(local_dir / "stack.env"))
        _apply_env(
            {
                "MUSHROOM_LOCAL_DIR": str(local_dir),
                "MUSHROOM_REPORTS_DIR": str(reports_dir),
                "MLFLOW_TRACKING_URI": f"sqlite:///{local_dir / 'mlflow' / 'mlflow.db'}",
                "ALARM_EVALUATION": "local",
            }
        )
        lambda_zip = private_zip(lambda_zip, local_dir)
        started = time.monotonic()
        # The registry is empty, so the first champion will be version 1: point the function
        # at it now and save an apply (its bundle is uploaded when it is promoted).
        outputs = terraform_apply(
            {"lambda_zip_path": str(lambda_zip), "model_version": "1"},
            target="moto",
            local_dir=local_dir,
            capture=True,
        )
        say(f"[demo-drift] terraform apply: {time.monotonic() - started:.0f} s")
        # Monitoring reads the archive, as on a deployed stack. No grace: the pump below is
        # this process's own, and it writes all it holds before every cycle. A retrained model
        # that passes the offline gate becomes the shadow (MONITORING_PROMOTION=shadow, the
        # default over the archive, said here so the scenario does not depend on it); the
        # cycles promote or discard it on its paired evidence, with the default rules.
        _apply_env(
            {
                **read_stack_env(local_dir / "stack.env"),
                "MONITORING_SOURCE": "archive",
                "MONITORING_ARCHIVE_GRACE_SECONDS": "0",
                "MONITORING_PROMOTION": "shadow",
            }
        )

        from config.settings import Settings  # noqa: PLC0415
        from monitoring import cycle as monitoring_cycle  # noqa: PLC0415
        from monitoring.outputs import describe as describe_cycle  # noqa: PLC0415
        from orchestration import monitor  # noqa: PLC0415
        from training.data import load_dataset  # noqa: PLC0415
        from training.pipeline import run_training  # noqa: PLC0415

        settings = Settings.from_env()
        assert settings.monitoring is not None
        rules = settings.monitoring.shadow
        say(
            "[demo-drift] promotion: shadow. A retrained model that passes the offline gate "
            "scores beside the champion and answers no one; promoted with at least "
            f"{rules.min_labelled} labelled records ({rules.min_poisonous} poisonous), zero "
            "false edible and McNemar's one-sided p(worse) > "
            f"{rules.alpha:g}; discarded at its first false edible, when significantly worse, "
            f"or after {rules.max_age_hours:g} h"
        )
        dataset = load_dataset(settings)
        excluded = choose_species(dataset, n_excluded, seed)
        result = ScenarioResult(excluded_species=excluded)
        say(f"[demo-drift] first champion trained without species {excluded}")

        def deploy(version: str) -> None:
            """The monitoring cycle's own default deploy (the registry's champion).

            Silent: the cycle's summary prints the deployment once, after the alarm that caused
            it."""
            monitor.default_deploy(version, settings)

        first = run_training(settings, exclude_species=excluded, reason="demo-drift:initial")
        if not first.promoted or not first.model_version:
            raise RuntimeError(f"the first model was not promoted: {first.gate_reason}")
        result.versions["initial"] = first.model_version
        if first.model_version != "1":
            deploy(first.model_version)
            say(f"[demo-drift] deployed version {first.model_version}")

        retrain = functools.partial(run_training, settings, exclude_species=excluded)
        deps = monitor.build_deps(retrain=retrain, deploy=deploy)
        # The drift reference is the cycle's own: the training data of the model served now
        # (known species first; after the rollout, the labelled records it was retrained on).
        deps.clock_label = SIMULATED_CLOCK
        sqs, sns = boto3.client("sqs"), boto3.client("sns")
        queue = subscribe_observer(sns, sqs, outputs["sns_topic_arn"])
        period = max(
            int(a["Period"]) for a in deps.cloudwatch.describe_alarms(deps.config.alarm_names)
        )
        clock = datetime.now(timezone.utc) - timedelta(seconds=period * 10)
        function_log = local_dir / "function.log"

        from monitoring.aws import KinesisStreamReader  # noqa: PLC0415
        from orchestration.rollout import connect, describe, serving  # noqa: PLC0415

        stack = connect(local_dir=local_dir)
        output = KinesisStreamReader(settings.output_stream_name)
        written = output.read({}).checkpoint  # the output stream is empty: its tips
        pump = make_pump(local_dir / "firehose-pump")
        s3 = boto3.client("s3")
        archive_prefixes = [
            outputs["archive_verdicts_prefix"],
            outputs["archive_observations_prefix"],
        ]

        def score(frame: pd.DataFrame, tag: str) -> Any:
            """Put ``frame`` on the input stream and run the function until it is idle."""
            records = producer.observations(frame, tag)
            producer.put_raw(producer.to_raw(records), settings.input_stream_name)
            with function_log.open("a") as log_stream:  # JSON logs + EMF, out of the way
                stats = run_until_idle(
                    outputs["function_name"],
                    idle_seconds=2.0,
                    timeout=600.0,
                    state_dir=local_dir / "lambda-runtime",
                    log_stream=log_stream,
                )
            return records, stats

        phases = build_phases(dataset, excluded, per_phase, seed)
        for index, phase in enumerate(phases):
            served = serving(stack)  # what scores this window's records
            say(
                f"[demo-drift] {phase.name}: {len(phase.frame)} observations "
                f"({phase.description}); {describe(served)}"
            )
            records, stats = score(phase.frame, phase.name)
            say(
                f"[demo-drift] local Lambda runtime: {stats.records_read} records in "
                f"{stats.invocations} invocations, {stats.function_errors} function errors "
                f"({stats.elapsed_s:.1f} s; logs in {function_log})"
            )
            read = output.read(written)
            written = read.checkpoint
            verdicts = verdict_counts([json.loads(r) for r in read.records])
            say(f"[demo-drift] {describe_verdicts(verdicts)}")
            archived = archive_streams(pump)
            counts = count_objects(s3, settings.data_bucket, archive_prefixes)
            say(
                f"[demo-drift] Firehose pump: {archived} records archived; the archive holds "
                + ", ".join(f"{n} objects under {prefix}" for prefix, n in counts.items())
            )
            producer.write_labels(
                settings.data_bucket, phase.name, producer.label_lines(phase.frame, records)
            )
            at = clock + timedelta(seconds=period * index)
            cycle = monitoring_cycle.run_exclusive(
                deps, at=at, window=phase.name, cut=datetime.now(timezone.utc)
            )
            say(describe_cycle(cycle))
            messages = drain(sqs, queue)
            result.sns_messages.extend({"window": phase.name, **m} for m in messages)
            entry = dict(cycle.timeline_entry)
            entry["sns_subjects"] = [m["subject"] for m in messages]
            entry["observations"] = len(records)
            # The alias that scored the window (a promotion in its cycle moves it after).
            entry["alias_version"] = served.function_version
            entry["shadow_model_version"] = served.shadow_model_version
            entry["verdicts"] = verdicts
            result.timeline.append(entry)
            for event in entry.get("shadow_events") or []:
                result.versions[f"shadow_{event['event']}"] = event["model_version"]
                say(f"[demo-drift] {describe_shadow_event(event, entry)}")
        result.versions["champion"] = _champion(settings)
        result.drill = rollback_drill(stack, phases[-1].frame, score, settings, say)

        reports_dir.mkdir(parents=True, exist_ok=True)
        (reports_dir / "timeline.json").write_text(
            json.dumps(result.timeline, indent=2, default=str)
        )
        (reports_dir / "rollback_drill.json").write_text(json.dumps(result.drill, indent=2))
        write_timeline_png(deps.config.reports_dir)
        say(format_timeline(result.timeline))
        say(closing_hints(deps.config.reports_dir, deps.config.workspace_dir))
        return result
    finally:
        if not keep:
            stop_emulator(local_dir)


def verdict_counts(verdicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The window's output records: how many, by served model version and verdict, and the
    shadow's (its ``shadow`` field) by shadow model version and verdict."""
    served: Counter[str] = Counter()
    shadow: Counter[str] = Counter()
    served_verdicts: dict[str, Counter[str]] = {}
    shadow_verdicts: dict[str, Counter[str]] = {}
    for record in verdicts:
        version = str(record.get("model_version"))
        served[version] += 1
        served_verdicts.setdefault(version, Counter())[str(record.get("verdict"))] += 1
        extra = record.get("shadow")
        if isinstance(extra, dict) and extra.get("model_version") is not None:
            other = str(extra["model_version"])
            shadow[other] += 1
            shadow_verdicts.setdefault(other, Counter())[str(extra.get("verdict"))] += 1
    return {
        "records": len(verdicts),
        "by_model_version": dict(served),
        "verdicts_by_model_version": {k: dict(v) for k, v in served_verdicts.items()},
        "shadow_by_model_version": dict(shadow),
        "shadow_verdicts_by_model_version": {k: dict(v) for k, v in shadow_verdicts.items()},
    }


def describe_verdicts(counts: dict[str, Any]) -> str:
    """One line: who answered the window's records, and what the shadow said beside them."""
    served = "; ".join(
        f"model v{version} {counts['verdicts_by_model_version'][version]}"
        for version in sorted(counts["by_model_version"])
    )
    line = f"output stream: {counts['records']} verdicts served by {served or 'no model'}"
    if counts["shadow_by_model_version"]:
        line += "; beside them, only in the shadow field (answering no one): " + "; ".join(
            f"shadow v{version} {counts['shadow_verdicts_by_model_version'][version]}"
            for version in sorted(counts["shadow_by_model_version"])
        )
    return line


def describe_shadow_event(event: dict[str, Any], entry: dict[str, Any]) -> str:
    """One line per shadow start, promotion or discard, with the evidence it was decided on."""
    version, what = event["model_version"], event["event"]
    if what == "started":
        return (
            f"shadow v{version} started: it passed the offline gate and now scores every "
            f"record beside the champion (v{entry['model_version']}), answering no one"
        )
    view = entry.get("shadow") or {}
    decision = view.get("decision") or {}
    figures = (view.get("figures") or {}).get("shadow") or {}
    discordant = view.get("discordant") or {}
    p_worse = decision.get("p_worse")
    return (
        f"shadow v{version} {what} on its evidence: {view.get('labelled')} labelled records "
        f"({view.get('labelled_poisonous')} poisonous), false edible "
        f"{figures.get(vm.FALSE_EDIBLE, '-')}, discordant pairs: "
        f"champion right b={discordant.get('champion')}, shadow right "
        f"c={discordant.get('shadow')}, McNemar one-sided p(worse) = "
        f"{'-' if p_worse is None else f'{p_worse:.4g}'} ({decision.get('reason')})"
    )


def archive_streams(pump: Any) -> int:
    """Let the Firehose pump read both streams to their tips and write what it buffers (as
    Firehose would within its buffering interval); fails if it cannot."""
    before = pump.stats.records_delivered
    while pump.poll_once():
        pass
    pump.flush(force=True)
    health = pump.health()
    if not health["healthy"] or health["buffered"]:
        raise RuntimeError(f"the Firehose pump could not archive the streams: {health['detail']}")
    return int(pump.stats.records_delivered - before)


def rollback_drill(
    stack: Any, frame: pd.DataFrame, score: Any, settings: Any, say: Any = print
) -> list[dict[str, Any]]:
    """Roll back, score, roll forward, score: which version served, which scored the records."""
    from monitoring.aws import KinesisStreamReader  # noqa: PLC0415
    from orchestration.rollout import describe, roll_back, roll_out_model  # noqa: PLC0415

    reader = KinesisStreamReader(settings.output_stream_name)
    sample = frame.head(min(200, len(frame)))
    steps = []
    for name, act in (
        ("rollback", lambda: roll_back(stack)),
        ("roll-forward", lambda: roll_out_model(stack)),
    ):
        checkpoint = reader.read({}).checkpoint
        result = act()
        say(f"[demo-drift] drill {name}: {result.message}; {describe(result.served)}")
        records, _ = score(sample, f"drill-{name}")
        verdicts = [json.loads(r) for r in reader.read(checkpoint).records]
        scored_by = dict(Counter(str(v.get("model_version")) for v in verdicts))
        say(f"[demo-drift] drill {name}: {len(verdicts)} verdicts by model version {scored_by}")
        steps.append(
            {
                "step": name,
                "alias_version": result.served.function_version,
                "served_model_version": result.served.model_version,
                "records": len(records),
                "verdicts": len(verdicts),
                "verdicts_by_model_version": scored_by,
            }
        )
    return steps


def _champion(settings: Any) -> str | None:
    from training.registry import get_champion  # noqa: PLC0415

    champion = get_champion(settings)
    return champion[0] if champion else None


def closing_hints(reports_dir: Path, workspace: Path | None) -> str:
    """Where to look now: the index page, its PNG and the dashboard over time."""
    lines = [
        "",
        f"Timeline charts: {reports_dir / 'index.html'} (PNG: {reports_dir / 'timeline.png'})",
    ]
    if workspace is not None:
        lines.append(f"Dashboard over time: {monitoring_ui_hint(workspace)}")
    return "\n".join(lines)


def format_timeline(timeline: Sequence[dict[str, Any]]) -> str:
    """The windows as a table (integer counts; model, alias and shadow: what scored the
    window); the clock and DecisionAccuracy explained."""
    header = (
        f"{'window':<22} {'records':>7} {'UnknownRate':>11} {'FalseEdibleRate':>15} "
        f"{'DecisionAccuracy':>16} "
        f"{'Drift':>6}  {'model':>5} {'alias':>5} {'shadow':>6}  alarms / actions"
    )
    clock = timeline[0].get("clock", "wall clock") if timeline else "wall clock"
    lines = ["", f"TIMELINE (window times from the {clock})", header, "-" * len(header)]
    for e in timeline:
        m = e["metrics"]

        def f(name: str) -> str:
            return f"{m[name]:.3f}" if name in m else "-"

        alarms = ", ".join(f"{k.removeprefix('mushroom-')}={v}" for k, v in e["alarms"].items())
        actions = ""
        if e.get("retrained"):
            outcome = "deployed" if e["deployed"] else "NOT deployed"
            started = [x for x in e.get("shadow_events") or [] if x["event"] == "started"]
            if any(x["model_version"] == str(e["new_version"]) for x in started):
                outcome = "started as the shadow"
            actions = f" | retrained -> v{e['new_version']} {outcome}"
        for event in e.get("shadow_events") or []:
            if event["event"] != "started":
                actions += f" | shadow v{event['model_version']} {event['event']}"
        if e.get("sns_subjects"):
            actions += f" | SNS: {'; '.join(e['sns_subjects'])}"
        lines.append(
            f"{e['window']:<22} {int(e['records']):>7} {f('UnknownRate'):>11} "
            f"{f('FalseEdibleRate'):>15} {f('DecisionAccuracy'):>16} {f('DriftShare'):>6}  "
            f"{str(e['model_version']):>5} {'v' + str(e.get('alias_version')):>5} "
            f"{str(e.get('shadow_model_version') or '-'):>6}  {alarms}{actions}"
        )
    lines.append(DECISION_ACCURACY_NOTE)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo_drift", description=__doc__)
    parser.add_argument("--local-dir", type=Path, default=DEFAULT_LOCAL_DIR)
    parser.add_argument("--per-phase", type=int, default=1500, help="observations per phase")
    parser.add_argument("--species", type=int, default=20, help="species held back at first")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lambda-zip", type=Path, help="reuse a built zip (default: build)")
    parser.add_argument("--keep", action="store_true", help="leave the emulator running")
    parser.add_argument("--reports-dir", type=Path, help=f"default: {DEFAULT_REPORTS_DIR}")
    parser.add_argument("--result", type=Path, help="also write the scenario's result as JSON")
    args = parser.parse_args(argv)
    result = run_scenario(
        args.local_dir,
        reports_dir=args.reports_dir,
        per_phase=args.per_phase,
        n_excluded=args.species,
        seed=args.seed,
        lambda_zip=args.lambda_zip,
        keep=args.keep,
    )
    if args.result:
        args.result.parent.mkdir(parents=True, exist_ok=True)
        args.result.write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
