"""Output writers: where verdict records go.

``OutputWriter`` is the interface the scoring service depends on. ``KinesisOutputWriter`` is the
boto3 adapter (PutRecords within Kinesis limits, retrying only the entries that failed, with
bounded exponential backoff and jitter); ``InMemoryWriter`` keeps records in a list (tests,
benchmarks, local runs).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

logger = logging.getLogger(__name__)

# Kinesis PutRecords limits (Kinesis API reference, PutRecords):
# 500 records and 5 MiB per request; 1 MiB per record, data plus partition key.
MAX_RECORDS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024

# Error codes and exceptions worth retrying; anything else (missing stream, access denied,
# validation) is a configuration fault that retrying cannot fix, so it is raised.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottlingException",
        "LimitExceededException",
    }
)


@dataclass(frozen=True)
class OutputBatch:
    """Output records as parallel lists (cheaper to build than one object per record)."""

    sequence_numbers: Sequence[str]
    partition_keys: Sequence[str]
    data: Sequence[bytes]

    def __len__(self) -> int:
        return len(self.data)


class OutputWriter(Protocol):
    """Writes output records; returns the sequence numbers whose output could not be written."""

    def write(self, batch: OutputBatch) -> list[str]: ...


@dataclass
class InMemoryWriter:
    """Keeps every written record as ``(sequence_number, partition_key, data)``."""

    records: list[tuple[str, str, bytes]] = field(default_factory=list)

    def write(self, batch: OutputBatch) -> list[str]:
        self.records.extend(zip(batch.sequence_numbers, batch.partition_keys, batch.data))
        return []


def chunk_indices(batch: OutputBatch, indices: Sequence[int]) -> list[list[int]]:
    """Split record indices into PutRecords requests within the count and size limits.

    Records over the per-record limit are left out (the caller reports them as failed).
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in indices:
        record_size = len(batch.data[i]) + len(batch.partition_keys[i].encode("utf-8"))
        if record_size > MAX_BYTES_PER_RECORD:
            continue
        if current and (
            len(current) == MAX_RECORDS_PER_REQUEST or size + record_size > MAX_BYTES_PER_REQUEST
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += record_size
    if current:
        chunks.append(current)
    return chunks


class KinesisOutputWriter:
    """PutRecords to one stream, retrying only the failed entries, bounded.

    ``client`` is a boto3 Kinesis client (or anything with the same ``put_records``).
    """

    def __init__(
        self,
        client: Any,
        stream_name: str,
        max_attempts: int = 4,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.client = client
        self.stream_name = stream_name
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        # ARNs go in StreamARN, names in StreamName (both accepted by PutRecords).
        key = "StreamARN" if stream_name.startswith("arn:") else "StreamName"
        self._stream_argument = {key: stream_name}

    def write(self, batch: OutputBatch) -> list[str]:
        failed: list[str] = []
        sizes_ok = set()
        for chunk in chunk_indices(batch, range(len(batch))):
            sizes_ok.update(chunk)
            failed.extend(batch.sequence_numbers[i] for i in self._put_with_retries(batch, chunk))
        if len(sizes_ok) != len(batch):
            oversized = [batch.sequence_numbers[i] for i in range(len(batch)) if i not in sizes_ok]
            logger.error("output records over the 1 MiB Kinesis limit: %s", oversized)
            failed.extend(oversized)
        return failed

    def _put_with_retries(self, batch: OutputBatch, pending: list[int]) -> list[int]:
        """Put one chunk; returns the indices still unwritten after the last attempt."""
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(self._backoff(attempt))
            try:
                response = self.client.put_records(
                    Records=[
                        {"Data": batch.data[i], "PartitionKey": batch.partition_keys[i]}
                        for i in pending
                    ],
                    **self._stream_argument,
                )
            except Exception as exc:  # noqa: BLE001 - classified right below
                code = _error_code(exc)
                if code not in RETRYABLE_ERROR_CODES and not _is_connection_error(exc):
                    raise
                logger.warning(
                    "PutRecords attempt %d/%d failed: %s", attempt + 1, self.max_attempts, exc
                )
                continue
            if not response.get("FailedRecordCount"):
                return []
            # Results come back in request order; retry only the entries with an ErrorCode.
            results = response["Records"]
            codes = {r.get("ErrorCode") for r in results if r.get("ErrorCode")}
            pending = [i for i, result in zip(pending, results) if result.get("ErrorCode")]
            logger.warning(
                "PutRecords attempt %d/%d: %d record(s) failed (%s)",
                attempt + 1,
                self.max_attempts,
                len(pending),
                ", ".join(sorted(codes)),
            )
        return pending

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0, ceiling)


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def _is_connection_error(exc: Exception) -> bool:
    """Network trouble (botocore's connection and read-timeout errors) is worth a retry."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ReadTimeoutError
    except ImportError:  # pragma: no cover - botocore ships with the Lambda runtime
        return False
    return isinstance(exc, (BotoConnectionError, ReadTimeoutError))
