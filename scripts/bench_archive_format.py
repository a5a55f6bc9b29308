"""Archive format: gzip JSON lines (what Firehose writes with AppendDelimiterToRecord) against
Parquet (what Firehose's record format conversion writes), on the same verdicts.

    python -m scripts.bench_archive_format [--verdicts 1000000] [--out reports/archive_format.json]

For each format: bytes stored, the bytes a query of the monitoring window's columns reads
(Athena bills and caps on these: whole objects for JSON, only the columns' chunks for
Parquet) and DuckDB's wall time for that query (dedupe on input_sequence_number, count per
verdict), best of 3, in one run. Verdicts are synthetic but shaped like the scorer's: 56-digit
sequence numbers, millisecond timestamps, 4-decimal probabilities, ~3% rejected.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from lambda_function.service import VerdictRecord

QUERY_COLUMNS = ("status", "verdict", "input_sequence_number", "scored_at", "model_version")
QUERY = """
SELECT verdict, count(*) AS n FROM (
  SELECT input_sequence_number, min_by(verdict, scored_at) AS verdict
  FROM {source} WHERE status = 'scored' GROUP BY input_sequence_number
) GROUP BY verdict ORDER BY verdict
"""


def verdict_lines(n: int, seed: int = 7) -> list[bytes]:
    """`n` verdict records as the scorer encodes them (msgspec, contract field order)."""
    import msgspec

    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    base = 49590338271490256608559692538361571095921575989136588898
    lines = []
    for i in range(n):
        rejected = rng.random() < 0.03
        p = round(rng.random(), 4)
        record = VerdictRecord(
            mushroom_id=f"obs-{i:07d}",
            status="rejected" if rejected else "scored",
            verdict=None if rejected else ("poisonous" if p >= 0.5 else "edible"),
            p_poisonous=None if rejected else p,
            model_name="mushroom-classifier",
            model_version="3",
            input_sequence_number=str(base + i),
            scored_at=f"2026-12-06T{(i // 360000) % 24:02d}:{(i // 6000) % 60:02d}:"
            f"{(i // 100) % 60:02d}.{i % 1000:03d}Z",
            errors=(
                ({"field": "cap_diameter", "message": "must be a finite number >= 0 (cm)"},)
                if rejected
                else ()
            ),
        )
        lines.append(encoder.encode(record) + b"\n")
    return lines


def best_of(runs: int, query: str, con: duckdb.DuckDBPyConnection) -> tuple[float, list]:
    best, rows = float("inf"), []
    for _ in range(runs):
        start = time.perf_counter()
        rows = con.execute(query).fetchall()
        best = min(best, time.perf_counter() - start)
    return best, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    parser.add_argument("--object-mib", type=int, default=64, help="Firehose size hint")
    parser.add_argument("--out", type=Path, default=Path("reports/archive_format.json"))
    args = parser.parse_args()
    lines = verdict_lines(args.verdicts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # JSON lines: one gzip object per `object_mib` MiB of records, as Firehose buffers.
        chunk, part, size = [], 0, 0
        for line in lines + [None]:
            if line is not None:
                chunk.append(line)
                size += len(line)
            if chunk and (line is None or size >= args.object_mib * 1024 * 1024):
                (folder / f"v-{part}.json.gz").write_bytes(gzip.compress(b"".join(chunk)))
                chunk, part, size = [], part + 1, 0
        json_bytes = sum(p.stat().st_size for p in folder.glob("*.json.gz"))
        # Parquet (Snappy, Firehose's default for the conversion), same records.
        raw = folder / "v.jsonl"
        raw.write_bytes(b"".join(lines))
        table = pa_json.read_json(raw)
        raw.unlink()
        pq.write_table(table, folder / "v.parquet", compression="snappy")
        parquet = pq.ParquetFile(folder / "v.parquet")
        parquet_bytes = (folder / "v.parquet").stat().st_size
        meta = parquet.metadata
        parquet_scanned = sum(
            meta.row_group(g).column(c).total_compressed_size
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
            if meta.row_group(g).column(c).path_in_schema in QUERY_COLUMNS
        )
        con = duckdb.connect()
        json_source = (
            f"read_json('{folder}/*.json.gz', format='newline_delimited', columns={{"
            + ", ".join(f"'{c}': 'VARCHAR'" for c in QUERY_COLUMNS)
            + "})"
        )
        json_s, json_rows = best_of(3, QUERY.format(source=json_source), con)
        parquet_s, parquet_rows = best_of(
            3, QUERY.format(source=f"read_parquet('{folder}/v.parquet')"), con
        )
    assert json_rows == parquet_rows, (json_rows, parquet_rows)
    result = {
        "verdicts": args.verdicts,
        "raw_bytes": sum(len(line) for line in lines),
        "json_gzip": {"objects": part, "bytes": json_bytes, "bytes_scanned": json_bytes},
        "parquet_snappy": {"bytes": parquet_bytes, "bytes_scanned": parquet_scanned},
        "duckdb_query_s": {"json_gzip": round(json_s, 3), "parquet": round(parquet_s, 3)},
        "rows": json_rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
