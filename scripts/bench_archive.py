"""The monitor's cost on the archive path (``make bench-monitor``): reports/benchmark_archive.json.

For each size (default 1,000, 100,000 and 1,000,000 verdicts) a fresh archive in a temporary
folder: the verdicts as Firehose writes them (gzip JSON lines, 50,000 per object, 1% repeated
as a retried batch would), and labels for 10% of them in one label object, plus labels for 1%
more ids that are not scored yet (a lab faster than Firehose). Then one
:func:`monitoring.cycle.run_cycle` with DuckDB over that folder and the unit tests' in-memory
ports for the rest (state, CloudWatch): list and parse the labels, write the label events, the
SQL (window counts, invalid lines, the label join, the ids left waiting), publish, evaluate
the alarms, report. Reported per cycle: wall time, CPU time of the process (DuckDB's threads
included) per verdict, and peak RSS (``VmHWM``, reset before the cycle). Targets: <= 9 us CPU
per verdict and <= 1 GB peak RSS at 1,000,000 verdicts. Then the waiting labels' verdicts are
archived and a second cycle runs: what joining them costs (``late``; its scan covers every
verdict of the look-back).

``--formats`` also measures gzip JSON lines against Parquet (zstd) for the same verdicts
with DuckDB: bytes on disk and the window-count query's time on each.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import duckdb

from monitoring import archive as sql
from monitoring.cycle import run_cycle
from scripts.bench_monitor import peak_rss_mb, reset_peak_rss
from tests.fakes.monitoring import FolderObjects, archive_deps, config

DEFAULT_OUTPUT = Path("reports/benchmark_archive.json")
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
PER_OBJECT = 50_000
LABEL_SHARE, REPEAT_SHARE = 0.10, 0.01
SEQUENCE_HEAD = "4959033827149025660855969253836"  # a shard's sequence numbers share it


def write_archive(root: Path, n: int, seed: int = 7) -> dict[str, Any]:
    """``n`` verdicts (plus repeats) and labels for a tenth of them; returns sizes."""
    rng = random.Random(seed)
    objects = FolderObjects(root)
    scored = T0 - timedelta(minutes=10)
    base = int(scored.timestamp() * 1000)
    sizes = {"verdict_bytes": 0, "verdict_objects": 0, "lines": 0}
    labels: list[bytes] = []
    for first in range(0, n, PER_OBJECT):
        lines = []
        for i in range(first, min(n, first + PER_OBJECT)):
            roll = rng.random()
            call = "unknown" if roll < 0.01 else "poisonous" if roll < 0.56 else "edible"
            p = rng.uniform(0.5, 1) if call == "poisonous" else rng.uniform(0, 0.5)
            # Spread over the 10 minutes before the window ends, as a stream would be; real
            # sequence numbers are 56 digits that differ in their last ~20.
            at = datetime.fromtimestamp((base + i * 600_000 // max(n, 1)) / 1000, timezone.utc)
            line = (
                f'{{"mushroom_id":"obs-{i:07d}","status":"scored","verdict":"{call}",'
                f'"p_poisonous":{p:.4f},'
                '"model_name":"mushroom-classifier","model_version":"1",'
                f'"input_sequence_number":"{SEQUENCE_HEAD}{rng.randrange(10**25):025d}",'
                f'"scored_at":"{sql.timestamp(at)}","errors":[]}}'
            ).encode()
            lines.append(line)
            if rng.random() < REPEAT_SHARE:
                lines.append(line)
            if rng.random() < LABEL_SHARE:
                truth = "p" if call != "edible" or rng.random() < 0.01 else "e"
                labels.append(json.dumps({"mushroom_id": f"obs-{i:07d}", "label": truth}).encode())
        body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6)
        key = f"{sql.TABLES['verdicts'].prefix}{sql.partition_key(scored)}part-{first:08d}.gz"
        objects.put(key, body, "application/gzip")
        sizes["verdict_bytes"] += len(body)
        sizes["verdict_objects"] += 1
        sizes["lines"] += len(lines)
    sizes["labels"] = len(labels)
    sizes["early_labels"] = max(1, n // 100)  # ids n.. : scored after the first window
    labels += [
        json.dumps({"mushroom_id": f"obs-{n + j:07d}", "label": "p"}).encode()
        for j in range(sizes["early_labels"])
    ]
    objects.put(
        "labels/received/2026-11-27T11-59-00.000000Z-lab.jsonl",
        b"\n".join(labels) + b"\n",
        "application/jsonl",
    )
    return sizes


def archive_early_verdicts(objects: FolderObjects, n: int, count: int, at: datetime) -> None:
    """The verdicts the early labels wait for (poisonous mushrooms called edible)."""
    lines = [
        (
            f'{{"mushroom_id":"obs-{n + j:07d}","status":"scored","verdict":"edible",'
            '"p_poisonous":0.1,"model_name":"mushroom-classifier","model_version":"1",'
            f'"input_sequence_number":"{SEQUENCE_HEAD}late{j:021d}",'
            f'"scored_at":"{sql.timestamp(at)}","errors":[]}}'
        ).encode()
        for j in range(count)
    ]
    key = f"{sql.TABLES['verdicts'].prefix}{sql.partition_key(at)}late.gz"
    objects.put(key, gzip.compress(b"\n".join(lines) + b"\n"), "application/gzip")


def run_size(n: int, tmp: Path) -> dict[str, Any]:
    root = tmp / f"archive-{n}"
    sizes = write_archive(root, n)
    objects, cfg = FolderObjects(root), tmp / f"cfg-{n}"
    deps = archive_deps(cfg, objects, config=config(cfg, min_records=100, min_labels=50))
    reset_peak_rss()
    cpu0, wall0 = _cpu(), time.perf_counter()
    result = run_cycle(deps, at=T0)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    assert result.metrics.records == n, (result.metrics.records, n)
    assert result.metrics.labelled == sizes["labels"], (result.metrics.labelled, sizes)
    assert result.archive["labels"]["waiting"] == sizes["early_labels"], result.archive
    first = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": peak_rss_mb()}

    early = sizes["early_labels"]
    archive_early_verdicts(objects, n, early, T0 + timedelta(seconds=30))
    reset_peak_rss()
    cpu0, wall0 = _cpu(), time.perf_counter()
    late = run_cycle(deps, at=T0 + timedelta(minutes=1))
    late_cpu, late_wall = _cpu() - cpu0, time.perf_counter() - wall0
    assert late.metrics.records == early and late.archive["labels"]["joined_late"] == early
    assert late.metrics.false_edible == early and late.archive["labels"]["waiting"] == 0
    return {
        "verdicts": n,
        **sizes,
        "labelled": result.metrics.labelled,
        "wall_s": first["wall_s"],
        "cpu_s": first["cpu_s"],
        "cpu_us_per_verdict": round(cpu / n * 1e6, 2),
        "peak_rss_mb": first["peak_rss_mb"],
        "false_edible_rate": result.metrics.false_edible_rate,
        "late": {
            "labels_joined_late": early,
            "wall_s": round(late_wall, 3),
            "cpu_s": round(late_cpu, 3),
            "cpu_us_per_archived_verdict": round(late_cpu / n * 1e6, 2),
            "peak_rss_mb": peak_rss_mb(),
        },
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare_formats(root: Path) -> dict[str, Any]:
    """The same verdicts as gzip JSON lines and as Parquet (zstd): bytes and query time."""
    con = duckdb.connect()
    json_glob = str(root / "archive/verdicts/*/*/*")
    parquet = root / "verdicts.parquet"
    columns = ", ".join(f"{c!r}: {t!r}" for c, t in sql.VERDICT_COLUMNS)
    source = (
        f"read_json('{json_glob}', format='newline_delimited', columns={{{columns}}}, "
        "compression='gzip')"
    )
    con.execute(f"COPY (SELECT * FROM {source}) TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)")
    query = (
        "SELECT verdict, count(DISTINCT input_sequence_number) AS n, sum(p_poisonous) AS p "
        "FROM {src} GROUP BY verdict"
    )
    out: dict[str, Any] = {
        "json_gzip_bytes": sum(p.stat().st_size for p in root.glob("archive/verdicts/*/*/*")),
        "parquet_zstd_bytes": parquet.stat().st_size,
    }
    # What Athena would scan of Parquet for the label join: only the columns it names.
    join_columns = ("mushroom_id", "status", "verdict", "model_version", "scored_at")
    out["parquet_label_join_column_bytes"] = con.execute(
        "SELECT sum(total_compressed_size) FROM parquet_metadata(?) "
        f"WHERE path_in_schema IN ({', '.join(repr(c) for c in join_columns)})",
        [str(parquet)],
    ).fetchone()[0]
    for name, src in (("json_gzip", source), ("parquet", f"read_parquet('{parquet}')")):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            con.execute(query.format(src=src)).fetchall()
            times.append(time.perf_counter() - started)
        out[f"{name}_query_s"] = round(min(times), 3)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_archive", description=__doc__)
    parser.add_argument("--records", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--formats", action="store_true", help="also compare gzip JSON / Parquet")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        for n in args.records:
            run = run_size(n, Path(tmp))
            runs.append(run)
            print(
                f"{n:>9,} verdicts ({run['verdict_bytes'] / 1e6:.1f} MB gzip, "
                f"{run['labels']:,} labels): cycle {run['wall_s']:.2f} s wall, "
                f"{run['cpu_s']:.2f} s CPU = {run['cpu_us_per_verdict']:.2f} us/verdict, "
                f"peak RSS {run['peak_rss_mb']} MB; then {run['late']['labels_joined_late']:,} "
                f"waiting labels joined: {run['late']['cpu_s']:.2f} s CPU "
                f"({run['late']['cpu_us_per_archived_verdict']:.2f} us per archived verdict), "
                f"peak RSS {run['late']['peak_rss_mb']} MB"
            )
        formats = None
        if args.formats:
            formats = compare_formats(Path(tmp) / f"archive-{args.records[-1]}")
            print("formats:", json.dumps(formats))
    largest = runs[-1]
    report = {
        "runs": runs,
        "formats": formats,
        "targets": {"cpu_us_per_verdict": 9, "peak_rss_mb_at_1m": 1000},
        "met": {
            "cpu": largest["cpu_us_per_verdict"] <= 9,
            "rss": (largest["peak_rss_mb"] or 0) <= 1000,
        },
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "duckdb": duckdb.__version__,
        "machine": platform.machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average {os.getloadavg()}; written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
