"""`make bench-e2e`: end-to-end throughput through the deployed stack on the emulator.

Puts 10,000 held-out observations on the input stream and reads their 10,000 verdicts from the
output stream while the deployed function runs (through the local Lambda runtime, which plays
the Lambda service's event source mapping). The clock runs from the first PutRecords call to
the last verdict read. A warm-up batch first takes the cold start (worker process, bundle
download) out of the measurement; that is what a steady stream sees. Several runs, the median
is reported; every run is in the JSON.

Needs a deployed stack: `make demo` (or `make up deploy` after `make train`). When the
background service of `make up` runs, it is the runtime measured (nothing else may poll the same
checkpoints); otherwise the benchmark runs the local Lambda runtime in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

WARMUP_RECORDS = 500


def _verdict_ids(stream: str, checkpoint: dict[str, str], wanted: set[str], timeout: float):
    """Read the verdict stream after ``checkpoint`` until every id in ``wanted`` was seen."""
    from monitoring.aws import KinesisStreamReader

    reader = KinesisStreamReader(stream)
    missing = set(wanted)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        read = reader.read(checkpoint)
        data, checkpoint = read.records, read.checkpoint
        for item in data:
            missing.discard(json.loads(item)["mushroom_id"])
        if missing and not data:
            time.sleep(0.05)  # at the tip: give the function a moment before reading again
    if missing:
        raise TimeoutError(f"{len(missing)} of {len(wanted)} verdicts missing after {timeout} s")
    return checkpoint


def run_once(
    records: list[dict[str, Any]], streams: dict[str, str], checkpoint: dict[str, str]
) -> tuple[float, dict[str, str]]:
    """Seconds from the first put to the last verdict of ``records``; the new checkpoint."""
    import producer

    raw = producer.to_raw(records)
    wanted = {r["mushroom_id"] for r in records}
    start = time.perf_counter()
    producer.put_raw(raw, streams["input"])
    checkpoint = _verdict_ids(streams["output"], checkpoint, wanted, timeout=300)
    return time.perf_counter() - start, checkpoint


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_e2e", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("reports/benchmark_e2e.json"))
    args = parser.parse_args(argv)

    from config.settings import LOCAL_DIR, Settings
    from config.stack_env import read_stack_env, stack_env_path
    from emulation.local_lambda import run
    from monitoring.aws import KinesisStreamReader
    from producer import observations
    from training.pipeline import held_out_sample

    # This process's own setup, as `source .local/stack.env` would do for a shell.
    os.environ.update(read_stack_env(stack_env_path()))
    missing = [
        k for k in ("AWS_ENDPOINT_URL", "INPUT_STREAM_NAME", "FUNCTION_NAME") if k not in os.environ
    ]
    if missing:
        print(f"error: no deployed stack ({', '.join(missing)} unset): run `make demo` first")
        return 2
    streams = {"input": os.environ["INPUT_STREAM_NAME"], "output": os.environ["OUTPUT_STREAM_NAME"]}
    sample = held_out_sample(Settings.from_env(), args.records, seed=11)
    tag = time.strftime("bench-%H%M%S")

    from emulation.services import function_counters, runtime_state_dir

    stop = threading.Event()
    runtime_stats: dict[str, Any] = {}
    service_before = function_counters(os.environ["FUNCTION_NAME"])
    if service_before is not None:  # `make up`'s background service polls the stream already
        log_path = runtime_state_dir(LOCAL_DIR) / "logs" / f"{os.environ['FUNCTION_NAME']}.log"
        function_log = open(os.devnull, "w")  # the service writes the function's logs
        runtime = threading.Thread(target=stop.wait, daemon=True)
    else:
        log_path = LOCAL_DIR / "bench-e2e-function.log"
        function_log = log_path.open("w")  # the function's own logs
        runtime = threading.Thread(
            target=lambda: runtime_stats.update(
                run(os.environ["FUNCTION_NAME"], stop=stop, log_stream=function_log).to_dict()
            ),
            daemon=True,
        )
    checkpoint = KinesisStreamReader(streams["output"]).read({}).checkpoint
    runtime.start()
    seconds: list[float] = []
    try:
        warmup = observations(sample.head(WARMUP_RECORDS), f"{tag}-warmup")
        cold, checkpoint = run_once(warmup, streams, checkpoint)
        print(f"warm-up: {len(warmup)} records in {cold:.2f} s (includes the cold start)")
        for i in range(args.runs):
            records = observations(sample, f"{tag}-run{i}")
            elapsed, checkpoint = run_once(records, streams, checkpoint)
            seconds.append(elapsed)
            print(
                f"run {i + 1}: {len(records)} records in {elapsed:.2f} s "
                f"= {len(records) / elapsed:,.0f} records/s"
            )
    finally:
        stop.set()
        runtime.join(timeout=30)
        function_log.close()

    if service_before is not None:
        after = function_counters(os.environ["FUNCTION_NAME"]) or {}
        runtime_stats = {
            "invocations": after.get("invocations", 0) - service_before["invocations"],
        }
    median = statistics.median(seconds)
    report = {
        "records": len(sample),
        "seconds": round(median, 3),
        "records_per_s": round(len(sample) / median, 1),
        "runs_seconds": [round(s, 3) for s in seconds],
        "warmup_records": WARMUP_RECORDS,
        "warmup_seconds_with_cold_start": round(cold, 3),
        "target_records_per_s": 2000,
        "path": "PutRecords -> Kinesis (moto) -> local Lambda runtime -> handler -> PutRecords "
        "-> Kinesis -> GetRecords",
        "runtime": {k: runtime_stats.get(k) for k in ("invocations", "cold_starts", "shards")},
        "function_log": str(log_path),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
