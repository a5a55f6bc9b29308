"""`make demo`: the whole system end to end on the embedded emulator, from a clean clone.

Steps (each prints what it does and how long it took):
1. start the emulator (moto server; `AWS_TARGET=localstack` for LocalStack on Docker);
2. build the Lambda zip and `terraform apply` the stack (buckets, streams, function, mapping,
   DLQ, alarms, SNS);
3. train, evaluate both ways, register in MLflow, run the promotion gate, export the bundle;
4. roll out the champion without Terraform: its bundle to S3, a published Lambda version, the
   alias `live` (which the event source mapping invokes) moved to it;
5. put held-out mushrooms (rows no model was trained on) plus malformed records on the input
   stream, as a producer would;
6. run the deployed function through the local Lambda runtime (the emulator stores functions but
   cannot run them), with the event source mapping's semantics;
7. read the verdict stream and summarise: verdicts, accuracy against the known labels,
   poisonous called edible, rejections with their reasons, throughput;
8. write the lab's late labels to S3 and run one monitoring cycle (CloudWatch metrics, alarms).

The stack stays up at the end; `make down` stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

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
    from scripts.emulator import read_stack_env, stack_env_path

    os.environ.update(read_stack_env(stack_env_path()))


def held_out_sample(n_records: int, seed: int) -> Any:
    """``n_records`` rows of the random split's test part: mushrooms no model trained on."""
    from training.data import load_dataset
    from training.pipeline import IS_TEST, prepare_frame
    from training.settings import Settings

    settings = Settings.from_env()
    frame = prepare_frame(load_dataset(settings), settings.seed)
    test = frame[frame[IS_TEST]]
    return test.sample(n=min(n_records, len(test)), random_state=seed).reset_index(drop=True)


def read_verdicts(
    stream_name: str, checkpoint: dict[str, str], expected: int, timeout: float
) -> list[dict[str, Any]]:
    """Verdicts after ``checkpoint`` until ``expected`` arrived or ``timeout`` passed."""
    from monitoring.aws import KinesisStreamReader

    reader = KinesisStreamReader(stream_name)
    verdicts: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(verdicts) < expected and time.monotonic() < deadline:
        read = reader.read(checkpoint)
        checkpoint = read.checkpoint
        verdicts.extend(json.loads(d) for d in read.records)
        if len(verdicts) < expected:
            time.sleep(0.2)  # polling the emulator: short pause between empty reads
    return verdicts


def summarise(
    verdicts: Sequence[dict[str, Any]],
    labels: dict[str, str],
    malformed_ids: set[str],
) -> dict[str, Any]:
    """Counts and quality numbers for the verdicts of one demo run."""
    by_verdict = Counter(v["verdict"] or "rejected" for v in verdicts)
    scored = [v for v in verdicts if v["status"] == "scored" and v["mushroom_id"] in labels]
    correct = sum(
        (v["verdict"] == "poisonous") == (labels[v["mushroom_id"]] == "p")
        for v in scored
        if v["verdict"] != "unknown"
    )
    decided = sum(1 for v in scored if v["verdict"] != "unknown")
    false_edible = sum(
        1 for v in scored if v["verdict"] == "edible" and labels[v["mushroom_id"]] == "p"
    )
    rejected = [v for v in verdicts if v["status"] == "rejected"]
    return {
        "outputs": len(verdicts),
        "by_verdict": dict(by_verdict),
        "accuracy_of_decided": correct / decided if decided else None,
        "unknown_share_of_labelled": (
            sum(1 for v in scored if v["verdict"] == "unknown") / len(scored) if scored else None
        ),
        "poisonous_called_edible": false_edible,
        "rejected": len(rejected),
        "malformed_put": len(malformed_ids),
        "rejections": [
            {"input": v["input_sequence_number"], "errors": v["errors"]} for v in rejected
        ],
        "model_version": (
            Counter(v["model_version"] for v in scored).most_common(1)[0][0] if scored else None
        ),
    }


def print_summary(summary: dict[str, Any], records_put: int, seconds: float) -> None:
    print(f"    outputs read: {summary['outputs']} for {records_put} records put")
    print(f"    served model version: {summary['model_version']}")
    for verdict, count in sorted(summary["by_verdict"].items()):
        print(f"    {verdict:>10}: {count}")
    if summary["accuracy_of_decided"] is not None:
        print(f"    accuracy of edible/poisonous verdicts: {summary['accuracy_of_decided']:.4%}")
        print(f"    called unknown (held-out rows): {summary['unknown_share_of_labelled']:.2%}")
    print(f"    poisonous called edible: {summary['poisonous_called_edible']}")
    print(
        f"    rejected: {summary['rejected']} (malformed records put: {summary['malformed_put']})"
    )
    for item in summary["rejections"][:10]:
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in item["errors"])
        print(f"      - {reasons[:150]}")
    print(
        f"    {records_put} records from put to verdicts read in {seconds:.1f} s, including the "
        "function's cold start and the runtime's idle wait; steady state: make bench-e2e"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    target = os.environ.get("AWS_TARGET", "moto")
    run_tag = time.strftime("demo-%Y%m%dT%H%M%S")

    from orchestration.rollout import connect, deploy, describe, roll_out_model, serving
    from scripts import producer
    from scripts.emulator import start_emulator
    from scripts.package_lambda import build_lambda_zip

    with step(f"Start the emulator ({target})"):
        state = start_emulator(target)
        _load_stack_env()
        print(f"    endpoint {state.endpoint}")

    with step("Build the Lambda zip and apply the Terraform stack"):
        zip_path = build_lambda_zip()
        # Terraform's own output only when it fails (TerraformError carries it).
        outputs, _ = deploy({"lambda_zip_path": str(zip_path)}, capture=True)
        _load_stack_env()
        print(f"    function {outputs['function_name']}, streams {outputs['input_stream_name']}")
        print(f"    -> {outputs['output_stream_name']}")

    with step("Train, evaluate, register and gate (MLflow)"):
        from training.pipeline import run_training
        from training.settings import Settings

        result = run_training(Settings.from_env(), reason="make demo")
        print(f"    version {result.model_version}: {result.gate_reason}")
        holdout = result.evaluation.get("species_holdout", {})
        random_split = result.evaluation.get("random_split", {})
        print(
            f"    random split: accuracy {random_split.get('accuracy', 0):.4%}, poisonous "
            f"called edible {random_split.get('false_edible')} of {random_split.get('n_test')}"
        )
        print(
            f"    species held out: poisonous called edible "
            f"{holdout.get('false_edible_rate', 0):.2%} (without the guard "
            f"{holdout.get('false_edible_rate_without_guard', 0):.1%}), unseen species called "
            f"unknown {holdout.get('unknown_rate_unseen', 0):.1%}, known species called unknown "
            f"{holdout.get('unknown_rate_known', 0):.2%}"
        )

    with step("Roll out the champion (no Terraform)"):
        rolled = roll_out_model(connect())
        print(f"    {rolled.message}")
        print(f"    {describe(rolled.served)}")

    from monitoring.aws import KinesisStreamReader

    verdict_checkpoint = KinesisStreamReader(outputs["output_stream_name"]).read({}).checkpoint

    with step(f"Put {args.records} held-out mushrooms and a few malformed records"):
        sample = held_out_sample(args.records, args.seed)
        records = producer.observations(sample, run_tag)
        malformed = producer.malformed_records(run_tag)
        started = time.monotonic()
        producer.put_raw(producer.to_raw(records) + malformed, outputs["input_stream_name"])
        labels = {r["mushroom_id"]: label for r, label in zip(records, sample["label"])}
        records_put = len(records) + len(malformed)
        print(f"    {records_put} records on {outputs['input_stream_name']}")

    with step("Run the function with the event source mapping's semantics"):
        from scripts.local_lambda import run_until_idle

        log_path = Path(".local/demo-function.log")
        with log_path.open("w") as function_log:  # the function's JSON logs and EMF metrics
            stats = run_until_idle(
                outputs["function_name"], idle_seconds=2.0, timeout=600, log_stream=function_log
            )
        print(f"    function logs (JSON, with EMF metrics): {log_path}")
        print(
            f"    {stats.records_read} records in {stats.invocations} invocations, "
            f"{stats.function_errors} function errors, {stats.on_failure_records} sent to the DLQ"
        )

    with step("Read the verdict stream"):
        verdicts = read_verdicts(
            outputs["output_stream_name"], verdict_checkpoint, records_put, timeout=60
        )
        seconds = time.monotonic() - started
        summary = summarise(verdicts, labels, {m.partition_key for m in malformed})
        print_summary(summary, records_put, seconds)
        print(f"    served: {describe(serving(connect()))}")

    with step("Late labels from the lab, and one monitoring cycle"):
        uri = producer.write_labels(
            outputs["data_bucket"], run_tag, producer.label_lines(sample, records)
        )
        print(f"    labels: {uri}")
        from monitoring.cycle import build_deps, describe, run_exclusive

        cycle = run_exclusive(build_deps())
        print("    " + describe(cycle).replace("\n", "\n    "))

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    print(
        "\nThe stack is still up. Explore it:\n"
        f"  aws --endpoint-url {endpoint} kinesis list-streams\n"
        f"  aws --endpoint-url {endpoint} cloudwatch describe-alarms\n"
        f"  aws --endpoint-url {endpoint} s3 ls s3://{outputs['models_bucket']} --recursive\n"
        "  make mlflow-ui      # runs, metrics, plots, registry (http://127.0.0.1:5000)\n"
        "  make monitor        # another monitoring cycle\n"
        "  make rollback       # the alias back to the version served before\n"
        "  make invoke         # one event through the deployed function\n"
        "  make down           # stop the emulator"
    )
    ok = summary["outputs"] == records_put and summary["poisonous_called_edible"] == 0
    if summary["outputs"] != records_put:
        print(f"\nERROR: {records_put} records put but {summary['outputs']} outputs read")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
