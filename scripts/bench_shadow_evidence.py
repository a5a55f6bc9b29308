"""How long the shadow's paired-evidence query takes over an archive of shadowed verdicts.

Writes N verdicts carrying a shadow (gzip JSON lines, objects of 100,000 lines, as Firehose
would) and labels for a share of them into a temporary folder, then runs the one query of
``monitoring.shadow_evidence`` with DuckDB over that folder and prints wall and CPU time
(the process's, DuckDB's threads included) and the evidence's counts, as JSON.

    .venv/bin/python -m scripts.bench_shadow_evidence --records 100000 1000000

``make bench-shadow-evidence`` runs it with the defaults and writes
``reports/benchmark_shadow_evidence.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from monitoring.archive import LABEL_EVENTS, TABLES, partition_key, timestamp
from monitoring.duckdb_engine import DuckDBEngine
from monitoring.shadow_evidence import read_evidence

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=timezone.utc)
OBJECT_LINES = 100_000
CALLS = ("edible", "poisonous", "unknown")


def write_archive(root: Path, n: int, label_share: float, rng: random.Random) -> None:
    """``n`` shadowed verdicts over a day, labels for ``label_share`` of them."""
    labels = {}
    for start in range(0, n, OBJECT_LINES):
        at = T0 + timedelta(seconds=86_400 * start / n)
        lines = []
        for i in range(start, min(n, start + OBJECT_LINES)):
            champion, shadow = rng.choice(CALLS), rng.choice(CALLS)
            lines.append(
                json.dumps(
                    {
                        "mushroom_id": f"obs-{i:08d}",
                        "status": "scored",
                        "verdict": champion,
                        "p_poisonous": 0.5,
                        "model_name": "mushroom-classifier",
                        "model_version": "1",
                        "input_sequence_number": f"{i:056d}",
                        "scored_at": timestamp(at + timedelta(milliseconds=i % 1000)),
                        "errors": [],
                        "shadow": {"model_version": "2", "verdict": shadow, "p_poisonous": 0.4},
                    }
                )
            )
            if rng.random() < label_share:
                labels[f"obs-{i:08d}"] = rng.choice("pe")
        folder = root / TABLES["verdicts"].prefix / partition_key(at)
        folder.mkdir(parents=True, exist_ok=True)
        body = ("\n".join(lines) + "\n").encode()
        (folder / f"v-1-{at:%Y-%m-%d-%H-%M-%S}-{start}.gz").write_bytes(gzip.compress(body, 1))
    received = T0 + timedelta(days=1)
    folder = root / TABLES[LABEL_EVENTS].prefix / partition_key(received)
    folder.mkdir(parents=True, exist_ok=True)
    events = (
        json.dumps(
            {
                "mushroom_id": m,
                "label": label,
                "received_in": timestamp(received),
                "source_key": "w",
            }
        )
        for m, label in labels.items()
    )
    (folder / "w.gz").write_bytes(gzip.compress(("\n".join(events) + "\n").encode(), 1))


def measure(n: int, label_share: float, threads: int | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_archive(root, n, label_share, random.Random(n))
        engine = DuckDBEngine.local(root, threads=threads)
        engine.query("SELECT 1 AS one")  # connect outside the measurement
        wall, cpu = time.perf_counter(), time.process_time()
        found = read_evidence(
            engine, T0 - timedelta(hours=1), T0 + timedelta(days=1), timestamp(T0 + timedelta(2))
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    evidence = found["2"]
    return {
        "records": n,
        "labelled": evidence.labelled,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_record": round(cpu / n * 1e6, 2),
        "counted_records": evidence.records,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--label-share", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    runs = [measure(n, args.label_share, args.threads) for n in args.records]
    text = json.dumps({"load_average": [load_before, os.getloadavg()], "runs": runs}, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
