"""The monitor's throughput in process (``make bench-monitor``): reports/benchmark_monitor.json.

One :func:`monitoring.cycle.run_cycle` over in-memory ports (the unit tests' fakes: a one-shard
stream, a compare-and-swap state store, CloudWatch and S3 objects), so the number is the
monitor's own work, without network: decode and check every verdict, drop the ones already
counted, join the late labels, compute the window metrics, publish, evaluate the alarms, save
the state after each step, write the HTML report. Two modes:

- ``verdicts``: the verdict stream and the labels only (``MONITORING_READ_OBSERVATIONS=0``);
- ``drift``: also the observation stream, validated record by record, and Evidently's drift
  against a reference of ``--reference-rows`` observations (what ``make monitor`` does).

For each size in ``--records`` (default 1,000, 10,000 and 100,000), each mode runs ``--cycles``
cycles of that many new verdicts on one state, so later cycles carry the state a steady stream
leaves (recent sequence numbers, pending verdicts); the median cycle counts. Each cycle reports
its wall time, its CPU time (on a shared machine wall time also counts other processes) and its
peak RSS (``VmHWM``, reset before each cycle; RSS rather than tracemalloc, which misses native
buffers and slows the cycle). The smallest and largest size give a cost model: fixed seconds per
cycle (report, plots, saves) plus microseconds per record.
Observations are dataset rows when ``data/`` holds the dataset, else synthetic ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, Mapping, Sequence

from monitoring.cycle import CycleResult, run_cycle
from monitoring.drift import features_frame
from monitoring.ports import CycleDeps
from scripts.bench import sample_records
from tests.fakes.monitoring import (
    FakeCloudWatch,
    FakeObjects,
    FakeStore,
    FakeStream,
    FakeTrainer,
    config,
    label_line,
    verdict,
)

DEFAULT_OUTPUT = Path("reports/benchmark_monitor.json")
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
MODES = ("verdicts", "drift")
# A served mix like the held-out split's (55% of the dataset is poisonous), a few unknown
# verdicts and rejections: below both alarm thresholds, so no cycle retrains.
UNKNOWN_SHARE, REJECTED_SHARE = 0.01, 0.005


class TimedStore(FakeStore):
    """The fake state store, timing its saves and keeping the last document's size."""

    def __init__(self) -> None:
        super().__init__()
        self.save_seconds = 0.0
        self.last_bytes = 0

    def save(self, document: Mapping[str, Any], expected: str | None) -> str:
        started = time.perf_counter()
        # What an S3 store sends: the whole document as JSON, on every save.
        self.last_bytes = len(json.dumps(document).encode())
        version = super().save(document, expected)
        self.save_seconds += time.perf_counter() - started
        return version


def window_verdicts(start: int, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` verdict records (ids ``start..``) in the output contract's shape."""
    records = []
    for i in range(start, start + n):
        draw = rng.random()
        if draw < REJECTED_SHARE:
            records.append(verdict(i, None, None, status="rejected"))
        elif draw < REJECTED_SHARE + UNKNOWN_SHARE:
            records.append(verdict(i, "unknown", round(rng.random(), 4)))
        else:
            p = round(rng.random(), 4)
            records.append(verdict(i, "poisonous" if p >= 0.45 else "edible", p))
    return records


def window_labels(records: Sequence[Mapping[str, Any]], share: float, rng: random.Random):
    """The lab's label lines for ``share`` of the scored records (the verdict's class)."""
    lines = []
    for record in records:
        if record["status"] != "scored" or rng.random() >= share:
            continue
        index = int(str(record["mushroom_id"]).rsplit("-", 1)[1])
        lines.append(label_line(index, "e" if record["verdict"] == "edible" else "p"))
    return lines


def observation_rows(n: int) -> tuple[list[dict[str, Any]], str]:
    """``n`` observations (dataset rows repeated when ``n`` exceeds what one sample gives)."""
    base, source = sample_records(min(n, 20_000), seed=1)
    return [base[i % len(base)] for i in range(n)], source


def run_mode(
    mode: str, records: int, cycles: int, label_share: float, reference_rows: int, work: Path
) -> dict[str, Any]:
    """``cycles`` cycles of ``records`` new verdicts each, on one state; per-cycle seconds."""
    rng = random.Random(7)
    with_drift = mode == "drift"
    verdicts, observations = FakeStream("mushroom-verdicts"), FakeStream("mushroom-observations")
    objects, store = FakeObjects(), TimedStore()
    rows: list[dict[str, Any]] = []
    reference = None
    source = "none"
    if with_drift:
        rows, source = observation_rows(max(records, reference_rows))
        reference_frame = features_frame(rows[:reference_rows])
        reference = lambda: reference_frame  # noqa: E731 - the port is a callable
    deps = CycleDeps(
        config=replace(
            config(work / f"{mode}-{records}"), max_records=records, read_observations=with_drift
        ),
        verdicts=verdicts,
        observations=observations if with_drift else None,
        state_store=store,
        cloudwatch=FakeCloudWatch(),
        notify=lambda subject, message: "message-id",
        retrain=FakeTrainer(),
        deploy=lambda version: None,
        objects=objects,
        reference=reference,
    )
    results = []
    for cycle in range(cycles):
        batch = window_verdicts(cycle * records, records, rng)
        verdicts.put(batch)
        objects.put_labels(
            f"labels/cycle-{cycle:03d}.jsonl", window_labels(batch, label_share, rng)
        )
        if with_drift:
            observations.put(rows[:records])
        store.save_seconds = 0.0
        reset_peak_rss()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = run_cycle(deps, at=T0 + timedelta(minutes=cycle), window=f"{mode}-{cycle}")
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        results.append(cycle_summary(result, seconds, cpu_seconds, peak_rss_mb(), store))
    median = statistics.median(r["seconds"] for r in results)
    peaks = [r["peak_rss_mb"] for r in results if r["peak_rss_mb"] is not None]
    return {
        "mode": mode,
        "records": records,
        "observations_source": source,
        "cycles": results,
        "median_seconds": round(median, 4),
        "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in results), 4),
        "records_per_s": round(records / median, 1),
        "peak_rss_mb": max(peaks) if peaks else None,
    }


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux: ``5`` to /proc/self/clear_refs), so that
    :func:`peak_rss_mb` measures one cycle; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory since the last :func:`reset_peak_rss` (``VmHWM``), in MB.

    RSS rather than tracemalloc: it counts numpy, pandas and Evidently's native buffers and
    does not slow the cycle down; it includes the interpreter and the imported modules.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def cost_model(runs: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Fixed seconds per cycle and microseconds per record, from the smallest and largest run."""
    if len(runs) < 2:
        return None
    small, large = min(runs, key=itemgetter("records")), max(runs, key=itemgetter("records"))
    span = large["records"] - small["records"]
    per_record = (large["median_seconds"] - small["median_seconds"]) / span
    per_record_cpu = (large["median_cpu_seconds"] - small["median_cpu_seconds"]) / span
    return {
        "per_record_us": round(per_record * 1e6, 2),
        "fixed_seconds": round(small["median_seconds"] - per_record * small["records"], 3),
        # The same from CPU time: steadier than wall time when other processes share the cores.
        "per_record_cpu_us": round(per_record_cpu * 1e6, 2),
        "fixed_cpu_seconds": round(
            small["median_cpu_seconds"] - per_record_cpu * small["records"], 3
        ),
    }


def cycle_summary(
    result: CycleResult,
    seconds: float,
    cpu_seconds: float,
    peak_rss: float | None,
    store: TimedStore,
) -> dict[str, Any]:
    if not result.ok:
        raise SystemExit(f"cycle {result.window} failed: {result.errors}")
    return {
        "window": result.window,
        "seconds": round(seconds, 4),
        # CPU seconds of this process: on a shared machine wall time also counts the others.
        "cpu_seconds": round(cpu_seconds, 4),
        "peak_rss_mb": peak_rss,
        "verdicts": result.metrics.records,
        "labelled": result.metrics.labelled,
        "drift_rows": result.drift.rows if result.drift else 0,
        "published_datapoints": result.published,
        "state_save_seconds": round(store.save_seconds, 4),
        "state_bytes": store.last_bytes,
        "alarms": {a.name: a.state for a in result.alarms},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_monitor", description=__doc__)
    parser.add_argument(
        "--records",
        type=int,
        nargs="+",
        default=[1000, 10_000, 100_000],
        help="new verdicts per cycle",
    )
    parser.add_argument("--cycles", type=int, default=2, help="cycles per mode and size")
    parser.add_argument("--label-share", type=float, default=1.0, help="share of verdicts labelled")
    parser.add_argument("--reference-rows", type=int, default=5000, help="drift reference rows")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if min(args.records) < 1 or args.cycles < 1:
        parser.error("--records and --cycles must be at least 1")

    load_before = os.getloadavg()
    modes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as work:
        for mode in args.modes:
            # Imports, font caches and Evidently's first run are paid once per process: a
            # small unreported cycle takes them out of the measurement.
            run_mode(mode, 50, 1, args.label_share, min(args.reference_rows, 50), Path(work))
            runs = [
                run_mode(mode, n, args.cycles, args.label_share, args.reference_rows, Path(work))
                for n in args.records
            ]
            modes[mode] = {"runs": runs, "cost_model": cost_model(runs)}
    report = {
        "what": "one monitoring cycle (monitoring.cycle.run_cycle) over in-memory ports",
        "cycles_per_size": args.cycles,
        "label_share": args.label_share,
        "reference_rows": args.reference_rows,
        "modes": modes,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "environment": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for mode, result in modes.items():
        for run in result["runs"]:
            seconds = ", ".join(f"{c['seconds']:.3f}" for c in run["cycles"])
            peak = run["peak_rss_mb"]
            print(
                f"{mode:9s} {run['records']:>7,} verdicts/cycle: {run['records_per_s']:>9,.0f} "
                f"records/s (cycles {seconds} s; CPU {run['median_cpu_seconds']:.3f} s; peak RSS "
                f"{'n/a' if peak is None else f'{peak:,.0f} MB'}; state "
                f"{run['cycles'][-1]['state_bytes']:,} B)"
            )
        if result["cost_model"]:
            model = result["cost_model"]
            print(
                f"{mode:9s} per cycle: {model['fixed_seconds']} s fixed + "
                f"{model['per_record_us']} us per record (CPU: {model['fixed_cpu_seconds']} s + "
                f"{model['per_record_cpu_us']} us)"
            )
    print(f"wrote {args.output}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
