"""Event source mapping semantics for one Kinesis shard, independent of boto3.

What the Lambda service does with records it has read from a shard (AWS docs, "Using Lambda with
Kinesis", "partial batch responses", "on-failure destinations"):

- Records are sent in order, in batches of up to BatchSize records (and 6 MB).
- Success checkpoints after the batch. With ReportBatchItemFailures, a response listing failed
  sequence numbers checkpoints just before the lowest one and retries from it; an invalid
  response (null/empty/unknown itemIdentifier) fails the whole batch.
- A function error (exception, timeout, crash) retries the batch. With
  BisectBatchOnFunctionError the batch is split in halves first (splitting does not consume the
  retry quota; with both settings a partial response splits at the returned sequence number).
- MaximumRetryAttempts (-1 = infinite) and MaximumRecordAgeInSeconds (-1 = none) bound the
  retries; exhausted or expired records are discarded, their batch metadata goes to the
  on-failure destination, and the shard moves on: it is never blocked.

Retries here run immediately (no back-off): the emulator has no throttling to wait out. A stop
request (``should_stop``) is checked before every invocation, retries included, so one poison
record under unlimited retries and age cannot keep the runtime from stopping; what was not
acknowledged stays after the checkpoint and is read again by the next run.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

from emulation.lambda_runtime.events import (
    InvalidBatchResponse,
    build_kinesis_event,
    first_failed_index,
    on_failure_record,
    split_batches,
)
from emulation.lambda_runtime.model import InvokeOutcome, MappingConfig, StreamRecord

log = logging.getLogger(__name__)


class Invoker(Protocol):
    """Synchronous invocation of the function (the worker process, or a fake in tests)."""

    def invoke(self, event: dict[str, Any]) -> InvokeOutcome: ...


class FailureSink(Protocol):
    """Delivers an on-failure record to a destination ARN (SQS queue, SNS topic)."""

    def send(self, destination_arn: str, record: dict[str, Any]) -> None: ...


# The counters a poller keeps per shard and a run adds up (ShardStats, RunStats).
COUNTERS = (
    "records_read",
    "records_succeeded",
    "records_discarded",
    "invocations",
    "function_errors",
    "partial_failures",
    "retries",
    "bisections",
    "on_failure_records",
)


@dataclass
class ShardStats:
    """Counters for one shard (summed into run statistics)."""

    records_read: int = 0
    records_succeeded: int = 0
    records_discarded: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    retries: int = 0
    bisections: int = 0
    on_failure_records: int = 0
    checkpoint: str | None = None
    discarded: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def total(cls, shards: Iterable["ShardStats"]) -> "ShardStats":
        """The shards' counters added up and their discard logs joined (no checkpoint)."""
        total = cls()
        for stats in shards:
            for name in COUNTERS:
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            total.discarded.extend(stats.discarded)
        return total


@dataclass
class _Batch:
    records: list[StreamRecord]
    retries: int = 0
    invocations: int = 0
    last_outcome: InvokeOutcome | None = None


class ShardBatchRunner:
    """Feeds the records read from one shard through the function with ESM semantics."""

    def __init__(
        self,
        mapping: MappingConfig,
        invoker: Invoker,
        failure_sink: FailureSink,
        *,
        shard_id: str,
        region: str,
        invoke_identity_arn: str,
        on_checkpoint: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        should_stop: Callable[[], bool] = lambda: False,
        on_batch_start: Callable[[], None] = lambda: None,
    ) -> None:
        self.mapping = mapping
        # Called before each batch's first invocation (never between a batch's retries): where
        # an alias move may switch the function version, so no batch mixes versions.
        self.on_batch_start = on_batch_start
        self.invoker = invoker
        self.failure_sink = failure_sink
        self.shard_id = shard_id
        self.region = region
        self.invoke_identity_arn = invoke_identity_arn
        self.on_checkpoint = on_checkpoint
        self.clock = clock
        self.should_stop = should_stop
        self.stopped = False  # a stop request ended processing before every record was done
        self.stats = ShardStats()

    def process(self, records: Sequence[StreamRecord]) -> None:
        """Process records (in shard order) until each is acknowledged or discarded, or until
        a stop request (then the rest stays unacknowledged)."""
        self.stats.records_read += len(records)
        for batch in split_batches(records, self.mapping.batch_size):
            self.on_batch_start()
            if not self._process_batch(batch):
                return

    # -- internals ---------------------------------------------------------------------------

    def _process_batch(self, records: list[StreamRecord]) -> bool:
        """False when a stop request interrupted the batch."""
        pending: deque[_Batch] = deque([_Batch(records)])
        while pending:
            batch = pending.popleft()
            batch.records = self._drop_expired(batch)
            if not batch.records:
                continue
            if self.should_stop():
                self.stopped = True
                log.info(
                    "shard %s: stop requested; %d record(s) left unprocessed",
                    self.shard_id,
                    sum(len(b.records) for b in [batch, *pending]),
                )
                return False
            outcome = self.invoker.invoke(self._event(batch.records))
            batch.invocations += 1
            batch.last_outcome = outcome
            self.stats.invocations += 1
            if outcome.function_error is None:
                failed_at = self._first_failed(outcome, batch.records)
                if failed_at is None:
                    self._acknowledge(batch.records)
                    continue
                self.stats.partial_failures += 1
                if failed_at > 0:
                    # Checkpoint before the lowest failed record; retry from it.
                    self._acknowledge(batch.records[:failed_at])
                    rest = batch.records[failed_at:]
                    if self.mapping.bisect_on_error:
                        # "Bisected at the returned sequence number": a split, no retry used.
                        self.stats.bisections += 1
                        pending.appendleft(_Batch(rest, retries=batch.retries))
                    else:
                        batch.records = rest
                        self._retry_or_discard(batch, pending)
                    continue
                # The first record failed: no progress possible, same as a function error.
            else:
                self.stats.function_errors += 1
            if self.mapping.bisect_on_error and len(batch.records) > 1:
                middle = len(batch.records) // 2
                self.stats.bisections += 1
                pending.appendleft(_Batch(batch.records[middle:], retries=batch.retries))
                pending.appendleft(_Batch(batch.records[:middle], retries=batch.retries))
                continue
            self._retry_or_discard(batch, pending)
        return True

    def _first_failed(self, outcome: InvokeOutcome, records: list[StreamRecord]) -> int | None:
        if not self.mapping.report_batch_item_failures:
            return None  # Lambda ignores the response unless the mapping enables it.
        try:
            return first_failed_index(outcome.payload, records)
        except InvalidBatchResponse as exc:
            log.warning("shard %s: %s; retrying the whole batch", self.shard_id, exc)
            return 0

    def _retry_or_discard(self, batch: _Batch, pending: deque[_Batch]) -> None:
        limit = self.mapping.max_retry_attempts
        if 0 <= limit <= batch.retries:
            self._discard(batch, batch.records, "RetryAttemptsExhausted")
            return
        batch.retries += 1
        self.stats.retries += 1
        pending.appendleft(batch)

    def _drop_expired(self, batch: _Batch) -> list[StreamRecord]:
        max_age = self.mapping.max_record_age_s
        if max_age < 0:
            return batch.records
        oldest_allowed = self.clock() - max_age
        # Arrival times grow along a shard, so the expired records are a prefix of the batch.
        cut = 0
        while cut < len(batch.records) and batch.records[cut].arrival < oldest_allowed:
            cut += 1
        if cut:
            self._discard(batch, batch.records[:cut], "RecordAgeExceeded")
        return batch.records[cut:]

    def _acknowledge(self, records: list[StreamRecord]) -> None:
        self.stats.records_succeeded += len(records)
        self._checkpoint(records[-1].sequence_number)

    def _discard(self, batch: _Batch, records: list[StreamRecord], condition: str) -> None:
        record = on_failure_record(
            records,
            condition=condition,
            function_arn=self.mapping.function_arn,
            shard_id=self.shard_id,
            stream_arn=self.mapping.event_source_arn,
            invoke_count=batch.invocations,
            last_outcome=batch.last_outcome,
            now=self.clock(),
        )
        self.stats.records_discarded += len(records)
        self.stats.discarded.append(record)
        log.warning(
            "shard %s: discarding %d record(s) %s..%s (%s after %d invocation(s))",
            self.shard_id,
            len(records),
            records[0].sequence_number,
            records[-1].sequence_number,
            condition,
            batch.invocations,
        )
        destination = self.mapping.on_failure_destination
        if destination:
            self.failure_sink.send(destination, record)
            self.stats.on_failure_records += 1
        else:
            log.error("shard %s: no on-failure destination; records lost", self.shard_id)
        self._checkpoint(records[-1].sequence_number)

    def _checkpoint(self, sequence_number: str) -> None:
        self.stats.checkpoint = sequence_number
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.shard_id, sequence_number)

    def _event(self, records: list[StreamRecord]) -> dict[str, Any]:
        return build_kinesis_event(
            records,
            shard_id=self.shard_id,
            stream_arn=self.mapping.event_source_arn,
            region=self.region,
            invoke_identity_arn=self.invoke_identity_arn,
        )
