"""`make demo`: the whole system end to end on the embedded emulator, from a clean clone.

Steps (each prints what it does and how long it took):
1. start the emulator (moto server and the background service; `AWS_TARGET=localstack` for
   LocalStack on Docker);
2. build the Lambda zip and `terraform apply` the stack (buckets, streams, function, mapping,
   DLQ, alarms, SNS);
3. train, evaluate both ways, register in MLflow, run the promotion gate, export the bundle;
4. roll out the champion without Terraform: its bundle to S3, a published Lambda version, the
   alias `live` (which the event source mapping invokes) moved to it;
5. put held-out mushrooms (rows no model was trained on) plus malformed records on the input
   stream, as a producer would;
6. nothing to run: on the embedded emulator the background service that `make up` starts beside
   moto (the local Lambda runtime, polling every enabled event source mapping with the Lambda
   service's semantics) scores them, as the Lambda service would; the demo waits for it;
7. read the verdict stream and summarise: verdicts, the shared verdict metrics against the known
   labels (decision_accuracy, coverage, covered_accuracy, false_edible), rejections with their
   reasons, throughput;
8. write the lab's late labels to S3 and run one monitoring cycle (CloudWatch metrics, alarms).

The stack stays up at the end; `make down` stops it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import producer
from config.settings import LOCAL_DIR
from lambda_function import verdict_metrics as vm

pct = producer.percent

DEFAULT_RECORDS = 2_000


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step header and, when it ends, how long it took."""
    print(f"\n==> {title}", flush=True)
    start = time.monotonic()
    yield
    print(f"    done in {time.monotonic() - start:.1f} s", flush=True)


def _load_stack_env() -> None:
    """Make what `up`/`apply` wrote to .local/stack.env visible to this process."""
    from config.stack_env import read_stack_env, stack_env_path

    os.environ.update(read_stack_env(stack_env_path()))


def _rollback_possible() -> bool:
    """Whether `make rollback` has a target whose bundle verifies (after one demo there is
    none: the version Terraform created serves no model)."""
    from orchestration.rollout import can_roll_back, connect

    try:
        return can_roll_back(connect())
    except Exception:  # no stack to ask (the emulator is down): no hint that would fail
        return False


def explore_hints(models_bucket: str, rollback: bool) -> list[str]:
    """The closing hints. Each works pasted into a fresh terminal at the repository root: the
    AWS CLI goes through `make aws`, which reads the endpoint, region and the emulator's
    credentials from .local/stack.env and runs the virtualenv's `aws`. `make rollback` only
    when it has a valid target (``rollback``)."""
    hints = [
        'make aws ARGS="kinesis list-streams"',
        'make aws ARGS="cloudwatch describe-alarms"',
        f'make aws ARGS="s3 ls s3://{models_bucket} --recursive"',
        "make mlflow-ui      # runs, metrics, plots, registry (http://127.0.0.1:5000)",
        "make monitor        # another monitoring cycle",
        "make monitoring-ui  # the monitoring dashboard over time (http://127.0.0.1:8000)",
        "make invoke         # one event through the alias live, with its verdicts",
        "make rollback       # the alias back to the version served before",
        "make status         # what runs: the emulator, the service scoring and archiving records",
        "make down           # stop the emulator and the background service",
    ]
    return [hint for hint in hints if rollback or not hint.startswith("make rollback")]


def _service_counts(
    function: str, before: dict[str, int] | None, records: int, timeout: float = 10.0
) -> dict[str, int] | None:
    """What the background service counted for ``function`` since ``before``: polled until it
    counts ``records`` read (its health file is rewritten every second) or ``timeout``."""
    from emulation.services import function_counters

    deadline = time.monotonic() + timeout
    while True:
        now = function_counters(function)
        if now is None or before is None:
            return None
        done = {k: now[k] - before.get(k, 0) for k in now}
        if done["records_read"] >= records or time.monotonic() >= deadline:
            return done
        time.sleep(0.2)


def _service_archived(
    before: dict[str, Any] | None, records: int, timeout: float = 120.0
) -> dict[str, Any] | None:
    """What the background service's Firehose pump delivered to S3 since ``before``: polled
    (its health file is rewritten every second) until ``records`` are delivered and nothing
    is buffered, or ``timeout``. None without a service (LocalStack: Firehose itself)."""
    from emulation.services import poller_health

    if before is None:
        return None
    deadline = time.monotonic() + timeout
    while True:
        now = poller_health("firehose") or {}
        delivered = int(now.get("records_delivered", 0)) - int(before.get("records_delivered", 0))
        complete = delivered >= records and not now.get("buffered")
        if complete or time.monotonic() >= deadline:
            detail = str(now.get("detail", "the background service stopped"))
            return {"delivered": delivered, "complete": complete, "detail": detail}
        time.sleep(0.5)


def _window_wait(verdicts: Sequence[dict[str, Any]], grace_s: float) -> float:
    """Seconds until the last of ``verdicts`` was scored more than ``grace_s`` ago."""
    from datetime import datetime, timezone

    stamps = [v["scored_at"] for v in verdicts if v.get("scored_at")]
    if not stamps:
        return 0.0
    last = datetime.fromisoformat(max(stamps).replace("Z", "+00:00"))
    return max(0.0, last.timestamp() + grace_s + 1.0 - datetime.now(timezone.utc).timestamp())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--hints", action="store_true", help="only print the closing hints for the running stack"
    )
    args = parser.parse_args(argv)
    if args.hints:
        _load_stack_env()
        print(
            "\n".join(
                explore_hints(
                    os.environ.get("MODELS_BUCKET", "<models bucket>"), _rollback_possible()
                )
            )
        )
        return 0
    target = os.environ.get("AWS_TARGET", "moto")
    run_tag = time.strftime("demo-%Y%m%dT%H%M%S")

    from deployment.package_lambda import build_lambda_zip
    from emulation.emulator import start_emulator
    from orchestration.rollout import connect, deploy, describe, roll_out_model, serving

    with step(f"Start the emulator ({target})"):
        state = start_emulator(target, background_service=True)
        _load_stack_env()
        print(f"    endpoint {state.endpoint}")
        if target == "moto":
            print("    background service: the local Lambda runtime polls every enabled mapping")

    with step("Build the Lambda zip and apply the Terraform stack"):
        zip_path = build_lambda_zip()
        # Terraform's own output only when it fails (TerraformError carries it).
        outputs, _ = deploy({"lambda_zip_path": str(zip_path)}, capture=True)
        _load_stack_env()
        print(f"    function {outputs['function_name']}, streams {outputs['input_stream_name']}")
        print(f"    -> {outputs['output_stream_name']}")

    with step("Train, evaluate, register and gate (MLflow)"):
        from config.settings import Settings
        from training.pipeline import held_out_sample, run_training

        result = run_training(Settings.from_env(), reason="make demo")
        print(f"    version {result.model_version}: {result.gate_reason}")
        for name, key, rows in (
            ("random split", "random_split", "n_test"),
            ("species held out", "species_holdout", "n_unseen"),
        ):
            ev = result.evaluation.get(key, {})
            rates = (vm.DECISION_ACCURACY, vm.COVERAGE, vm.FALSE_EDIBLE_RATE)
            print(
                f"    {name} ({ev.get(rows)} rows): "
                + ", ".join(f"{m} {pct(ev.get(m))}" for m in rates)
                + f", {vm.FALSE_EDIBLE} {ev.get(vm.FALSE_EDIBLE)}"
                + f", misread_false_edible {ev.get('misread_false_edible')} of "
                f"{ev.get('misread_variants')} single-attribute variants of poisonous rows"
            )
        holdout = result.evaluation.get("species_holdout", {})
        print(
            f"    species held out: {vm.FALSE_EDIBLE_RATE} without the guard "
            f"{pct(holdout.get('false_edible_rate_without_guard'))}, unknown_rate_unseen "
            f"{pct(holdout.get('unknown_rate_unseen'))}, unknown_rate_known "
            f"{pct(holdout.get('unknown_rate_known'))}"
        )

    with step("Roll out the champion (no Terraform)"):
        rolled = roll_out_model(connect())
        print(f"    {rolled.message}")
        print(f"    {describe(rolled.served)}")

    from emulation.services import function_counters, poller_health, runtime_state_dir
    from monitoring.aws import KinesisStreamReader

    verdict_checkpoint = KinesisStreamReader(outputs["output_stream_name"]).read({}).checkpoint
    counted_before = function_counters(outputs["function_name"])
    pump_before = poller_health("firehose")

    with step(f"Put {args.records} held-out mushrooms and a few malformed records"):
        sample = held_out_sample(Settings.from_env(), args.records, args.seed)
        records = producer.observations(sample, run_tag)
        malformed = producer.malformed_records(run_tag)
        started = time.monotonic()
        producer.put_raw(producer.to_raw(records) + malformed, outputs["input_stream_name"])
        labels = {r["mushroom_id"]: label for r, label in zip(records, sample["label"])}
        records_put = len(records) + len(malformed)
        print(f"    {records_put} records on {outputs['input_stream_name']}")

    with step("Read the verdict stream (the background service scores the records)"):
        verdicts = producer.read_verdicts(
            outputs["output_stream_name"], verdict_checkpoint, records_put, timeout=600
        )
        seconds = time.monotonic() - started
        done = _service_counts(outputs["function_name"], counted_before, records_put)
        if done is not None:
            print(
                f"    {done['records_read']} records in {done['invocations']} invocations, "
                f"{done['function_errors']} function errors, {done['on_failure_records']} "
                "sent to the DLQ"
            )
            logs = runtime_state_dir(LOCAL_DIR) / "logs" / f"{outputs['function_name']}.log"
            print(f"    function logs (JSON, with EMF metrics): {logs}")
        summary = producer.summarise(verdicts, labels, {m.partition_key for m in malformed})
        producer.print_summary(summary, records_put, seconds)
        print(f"    served: {describe(serving(connect()))}")

    with step("Archive both streams in S3 (the background service's pump plays Firehose)"):
        import boto3

        from emulation.firehose_pump import count_objects

        archive = _service_archived(pump_before, 2 * records_put)
        if archive is not None:
            print(
                f"    {archive['delivered']} records archived by the service's pump "
                f"({archive['detail']})"
            )
        prefixes = [outputs["archive_verdicts_prefix"], outputs["archive_observations_prefix"]]
        counts = count_objects(boto3.client("s3"), outputs["data_bucket"], prefixes)
        for prefix, objects in counts.items():
            print(f"    s3://{outputs['data_bucket']}/{prefix}: {objects} gzip objects")

    with step("Late labels from the lab, and one monitoring cycle"):
        uri = producer.write_labels(
            outputs["data_bucket"], run_tag, producer.label_lines(sample, records)
        )
        print(f"    labels: {uri}")
        from monitoring.cycle import run_exclusive
        from monitoring.outputs import describe
        from orchestration.monitor import build_deps

        deps = build_deps()
        if deps.archive is not None:
            # A window over the archive ends `grace` before now (Firehose may still hold
            # newer verdicts): wait until the run's last verdict is inside it.
            wait = _window_wait(verdicts, deps.archive.grace.total_seconds())
            if wait > 0:
                print(
                    f"    waiting {wait:.0f} s: a window ends "
                    f"{deps.archive.grace.total_seconds():.0f} s before now "
                    "(MONITORING_ARCHIVE_GRACE_SECONDS), so the run's last verdict is in it"
                )
                time.sleep(wait)
        cycle = run_exclusive(deps)
        print("    " + describe(cycle).replace("\n", "\n    "))

    print("\nThe stack is still up. Explore it (from the repository root, in any terminal):")
    print(
        "\n".join(
            f"  {hint}" for hint in explore_hints(outputs["models_bucket"], _rollback_possible())
        )
    )
    ok = summary["outputs"] == records_put and summary[vm.FALSE_EDIBLE] == 0
    if archive is not None and not archive["complete"]:
        ok = False
        print(
            f"\nERROR: the service's pump archived {archive['delivered']} of "
            f"{2 * records_put} records: {archive['detail']}"
        )
    if summary["outputs"] != records_put:
        print(f"\nERROR: {records_put} records put but {summary['outputs']} outputs read")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
