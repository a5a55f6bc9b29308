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
from typing import Iterator, Sequence

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


def explore_hints(models_bucket: str) -> list[str]:
    """The closing hints. Each works pasted into a fresh terminal at the repository root: the
    AWS CLI goes through `make aws`, which reads the endpoint, region and the emulator's
    credentials from .local/stack.env and runs the virtualenv's `aws`."""
    return [
        'make aws ARGS="kinesis list-streams"',
        'make aws ARGS="cloudwatch describe-alarms"',
        f'make aws ARGS="s3 ls s3://{models_bucket} --recursive"',
        "make mlflow-ui      # runs, metrics, plots, registry (http://127.0.0.1:5000)",
        "make monitor        # another monitoring cycle",
        "make monitoring-ui  # the monitoring dashboard over time (http://127.0.0.1:8000)",
        "make invoke         # one event through the deployed function, with its verdicts",
        "make rollback       # the alias back to the version served before",
        "make down           # stop the emulator",
    ]


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
        print("\n".join(explore_hints(os.environ.get("MODELS_BUCKET", "<models bucket>"))))
        return 0
    target = os.environ.get("AWS_TARGET", "moto")
    run_tag = time.strftime("demo-%Y%m%dT%H%M%S")

    from deployment.package_lambda import build_lambda_zip
    from emulation.emulator import start_emulator
    from orchestration.rollout import connect, deploy, describe, roll_out_model, serving

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

    from monitoring.aws import KinesisStreamReader

    verdict_checkpoint = KinesisStreamReader(outputs["output_stream_name"]).read({}).checkpoint

    with step(f"Put {args.records} held-out mushrooms and a few malformed records"):
        sample = held_out_sample(Settings.from_env(), args.records, args.seed)
        records = producer.observations(sample, run_tag)
        malformed = producer.malformed_records(run_tag)
        started = time.monotonic()
        producer.put_raw(producer.to_raw(records) + malformed, outputs["input_stream_name"])
        labels = {r["mushroom_id"]: label for r, label in zip(records, sample["label"])}
        records_put = len(records) + len(malformed)
        print(f"    {records_put} records on {outputs['input_stream_name']}")

    with step("Run the function with the event source mapping's semantics"):
        from emulation.local_lambda import run_until_idle

        log_path = LOCAL_DIR / "demo-function.log"
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
        verdicts = producer.read_verdicts(
            outputs["output_stream_name"], verdict_checkpoint, records_put, timeout=60
        )
        seconds = time.monotonic() - started
        summary = producer.summarise(verdicts, labels, {m.partition_key for m in malformed})
        producer.print_summary(summary, records_put, seconds)
        print(f"    served: {describe(serving(connect()))}")

    with step("Late labels from the lab, and one monitoring cycle"):
        uri = producer.write_labels(
            outputs["data_bucket"], run_tag, producer.label_lines(sample, records)
        )
        print(f"    labels: {uri}")
        from monitoring.cycle import run_exclusive
        from monitoring.outputs import describe
        from orchestration.monitor import build_deps

        cycle = run_exclusive(build_deps())
        print("    " + describe(cycle).replace("\n", "\n    "))

    print("\nThe stack is still up. Explore it (from the repository root, in any terminal):")
    print("\n".join(f"  {hint}" for hint in explore_hints(outputs["models_bucket"])))
    ok = summary["outputs"] == records_put and summary[vm.FALSE_EDIBLE] == 0
    if summary["outputs"] != records_put:
        print(f"\nERROR: {records_put} records put but {summary['outputs']} outputs read")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
