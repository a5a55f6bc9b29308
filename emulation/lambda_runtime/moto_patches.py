"""Fixes for moto server's Kinesis when this runtime plays the Lambda service (moto 5.x).

1. For every record put on a stream that has an event source mapping, moto invokes the function
   itself, one record per event, through Docker: without a Docker engine each attempt fails
   slowly (measured: 10,000 records put in 15-19 s instead of 0.9 s); with one, every record
   would be processed twice and with the wrong batching. The local runtime polls instead.
2. Shard.put_record copies all sequence numbers to find the last one (quadratic in the shard
   length), and GetRecords scans the shard from its first record on every call.

``apply()`` is idempotent; run it in the moto server process before serving, e.g.
``python -m emulation.lambda_runtime.moto_server -p 5000`` (same arguments as ``moto_server``).
"""

from __future__ import annotations

from typing import Any

_ORIGINALS: list[tuple[Any, str, Any]] = []


def restore() -> None:
    """Undo apply() (for tests that run moto in-process)."""
    while _ORIGINALS:
        owner, name, original = _ORIGINALS.pop()
        setattr(owner, name, original)


def apply() -> None:
    """Patch moto's Lambda and Kinesis models in this process."""
    if _ORIGINALS:
        return
    from moto.awslambda.models import LambdaBackend
    from moto.kinesis.models import Record, Shard

    def send_kinesis_message(self: Any, *args: Any, **kwargs: Any) -> None:
        return None  # the local Lambda runtime polls the stream with ESM semantics

    def get_max_sequence_number(self: Shard) -> int:
        return next(reversed(self.records), 0) if self.records else 0

    def put_record(self: Shard, partition_key: str, data: str, explicit_hash_key: str) -> str:
        sequence_number = get_max_sequence_number(self) + 1
        self.records[sequence_number] = Record(
            partition_key, data, sequence_number, explicit_hash_key
        )
        return str(sequence_number)

    original_get_records = Shard.get_records

    def get_records(self: Shard, last_sequence_id: str, limit: int | None) -> Any:
        # Sequence numbers in a moto shard are consecutive integers: read by key from the
        # iterator's position instead of scanning from the first record.
        last = int(last_sequence_id)
        newest = get_max_sequence_number(self)
        if last >= newest:
            return [], last, 0
        if last + 1 not in self.records:
            return original_get_records(self, last_sequence_id, limit)
        results = []
        seq = last + 1
        while seq <= newest and (limit is None or len(results) < limit):
            record = self.records.get(seq)
            if record is None:  # a gap: fall back to moto's own scan
                return original_get_records(self, last_sequence_id, limit)
            results.append(record)
            seq += 1
        behind = self.records[newest].created_at - results[-1].created_at
        return results, results[-1].sequence_number, int(behind * 1000)

    for owner, name, replacement in (
        (LambdaBackend, "send_kinesis_message", send_kinesis_message),
        (Shard, "get_max_sequence_number", get_max_sequence_number),
        (Shard, "put_record", put_record),
        (Shard, "get_records", get_records),
    ):
        _ORIGINALS.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)
