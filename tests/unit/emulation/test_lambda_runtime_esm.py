"""Event source mapping semantics with a fake function and a fake destination (no AWS)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any, Callable

import pytest

from emulation.lambda_runtime.esm import ShardBatchRunner, ShardStats
from emulation.lambda_runtime.model import InvokeOutcome, MappingConfig, StreamRecord

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/in"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"
DLQ = "arn:aws:sqs:us-east-1:123456789012:dlq"
NOW = 1_700_000_000.0

Behaviour = Callable[[list[str]], Any]  # sequence numbers of a batch -> response or exception


class FakeFunction:
    """Runs a behaviour on the sequence numbers of each event, like a handler would."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.calls: list[list[str]] = []
        self.processed: list[str] = []  # records of invocations that succeeded

    def invoke(self, event: dict[str, Any]) -> InvokeOutcome:
        sequences = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        self.calls.append(sequences)
        request_id = f"req-{len(self.calls)}"
        try:
            response = self.behaviour(sequences)
        except Exception as exc:  # a handler exception is a function error
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return InvokeOutcome(request_id, error, function_error="Unhandled")
        failed = {i["itemIdentifier"] for i in (response or {}).get("batchItemFailures", [])}
        self.processed.extend(s for s in sequences if s not in failed)
        return InvokeOutcome(request_id, response)


class FakeDestination:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, destination_arn: str, record: dict[str, Any]) -> None:
        self.sent.append((destination_arn, record))


def records(n: int, arrival: float = NOW) -> list[StreamRecord]:
    data = base64.b64encode(b"{}").decode()
    return [StreamRecord(str(s), f"pk-{s}", data, arrival) for s in range(1, n + 1)]


def mapping(**overrides: Any) -> MappingConfig:
    base = MappingConfig(
        uuid="esm-1",
        function_arn=FUNCTION,
        event_source_arn=STREAM,
        batch_size=10,
        starting_position="TRIM_HORIZON",
        on_failure_destination=DLQ,
    )
    return replace(base, **overrides)


def runner(
    config: MappingConfig,
    behaviour: Behaviour,
    clock: Callable[[], float] = lambda: NOW,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[ShardBatchRunner, FakeFunction, FakeDestination, list[str]]:
    function, destination, checkpoints = FakeFunction(behaviour), FakeDestination(), []
    shard = ShardBatchRunner(
        config,
        function,
        destination,
        shard_id="shardId-000000000000",
        region="us-east-1",
        invoke_identity_arn="arn:aws:iam::123456789012:role/r",
        on_checkpoint=lambda shard_id, seq: checkpoints.append(seq),
        clock=clock,
        should_stop=should_stop,
    )
    return shard, function, destination, checkpoints


def poison(*bad: str) -> Behaviour:
    def behaviour(sequences: list[str]) -> Any:
        for seq in sequences:
            if seq in bad:
                raise ValueError(f"poison {seq}")
        return None

    return behaviour


def report(*bad: str) -> Behaviour:
    return lambda seqs: {"batchItemFailures": [{"itemIdentifier": s} for s in seqs if s in bad]}


def test_success_invokes_once_per_batch_and_checkpoints_each_batch() -> None:
    shard, function, destination, checkpoints = runner(mapping(batch_size=4), lambda s: None)
    shard.process(records(10))
    assert [len(c) for c in function.calls] == [4, 4, 2]
    assert checkpoints == ["4", "8", "10"] and destination.sent == []
    assert shard.stats.records_succeeded == 10 and shard.stats.checkpoint == "10"


def test_batch_item_failure_checkpoints_before_lowest_failure_and_retries_from_it() -> None:
    attempts: dict[str, int] = {}

    def flaky(seqs: list[str]) -> Any:
        # records 4 and 7 fail the first time they are seen
        failed = [s for s in seqs if s in ("4", "7") and attempts.setdefault(s, 0) == 0]
        for s in seqs:
            attempts[s] = attempts.get(s, 0) + 1
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    shard, function, destination, checkpoints = runner(
        mapping(report_batch_item_failures=True, max_retry_attempts=3), flaky
    )
    shard.process(records(10))
    assert function.calls[0] == [str(s) for s in range(1, 11)]
    assert function.calls[1] == [str(s) for s in range(4, 11)]  # retried from the lowest failure
    assert checkpoints == ["3", "10"]
    assert shard.stats.retries == 1 and destination.sent == []


def test_batch_item_failures_are_ignored_without_report_batch_item_failures() -> None:
    shard, function, _, checkpoints = runner(mapping(), report("3"))
    shard.process(records(5))
    assert len(function.calls) == 1 and checkpoints == ["5"]


def test_invalid_item_identifier_retries_the_whole_batch() -> None:
    calls = iter([{"batchItemFailures": [{"itemIdentifier": ""}]}, None])
    shard, function, _, checkpoints = runner(
        mapping(report_batch_item_failures=True, max_retry_attempts=1), lambda s: next(calls)
    )
    shard.process(records(3))
    assert function.calls == [["1", "2", "3"], ["1", "2", "3"]] and checkpoints == ["3"]


def test_retries_exhausted_without_bisect_discards_the_whole_batch_and_moves_on() -> None:
    shard, function, destination, checkpoints = runner(
        mapping(batch_size=5, max_retry_attempts=2), poison("3")
    )
    shard.process(records(10))
    assert function.calls[:3] == [["1", "2", "3", "4", "5"]] * 3  # 1 try + 2 retries
    assert function.calls[3] == ["6", "7", "8", "9", "10"]  # the shard is not blocked
    ((arn, record),) = destination.sent
    assert arn == DLQ
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == "req-3"
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "1",
        "5",
        5,
    )
    assert checkpoints == ["5", "10"]


def test_bisect_isolates_the_poison_record_and_processes_the_rest_once() -> None:
    shard, function, destination, checkpoints = runner(
        mapping(bisect_on_error=True, max_retry_attempts=2), poison("6")
    )
    shard.process(records(10))
    assert sorted(function.processed, key=int) == [str(s) for s in range(1, 11) if s != 6]
    assert len(function.processed) == len(set(function.processed))  # exactly once
    ((_, record),) = destination.sent
    info = record["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == "6"
    assert info["batchSize"] == 1
    assert record["requestContext"]["approximateInvokeCount"] == 3  # splits cost no retries
    assert [c for c in function.calls if c == ["6"]] == [["6"]] * 3
    assert checkpoints == sorted(checkpoints, key=int) and checkpoints[-1] == "10"
    assert shard.stats.records_discarded == 1 and shard.stats.records_succeeded == 9


def test_bisect_with_partial_response_splits_at_the_returned_sequence_number() -> None:
    shard, function, destination, checkpoints = runner(
        mapping(bisect_on_error=True, report_batch_item_failures=True, max_retry_attempts=1),
        report("4"),
    )
    shard.process(records(8))
    assert function.calls[0] == [str(s) for s in range(1, 9)]
    assert function.calls[1] == [str(s) for s in range(4, 9)]  # split at 4, no retry used
    ((_, record),) = destination.sent
    assert record["KinesisBatchInfo"]["startSequenceNumber"] == "4"
    assert record["KinesisBatchInfo"]["batchSize"] == 1
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert "functionError" not in record["responseContext"]
    assert checkpoints[0] == "3" and checkpoints[-1] == "8"


def test_infinite_retries_until_success() -> None:
    failures = iter([True, True, True, False])

    def flaky(seqs: list[str]) -> Any:
        if next(failures):
            raise TimeoutError("downstream")
        return None

    shard, function, destination, _ = runner(mapping(max_retry_attempts=-1), flaky)
    shard.process(records(3))
    assert len(function.calls) == 4 and destination.sent == [] and shard.stats.retries == 3


def test_expired_records_are_discarded_without_invoking() -> None:
    old = records(3, arrival=NOW - 120)
    fresh = [StreamRecord(str(s), "pk", "e30=", NOW - 1) for s in (4, 5)]
    shard, function, destination, checkpoints = runner(mapping(max_record_age_s=60), lambda s: None)
    shard.process(old + fresh)
    assert function.calls == [["4", "5"]]
    ((_, record),) = destination.sent
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["KinesisBatchInfo"]["batchSize"] == 3
    assert checkpoints == ["3", "5"]


def test_records_expiring_while_retried_go_to_the_destination() -> None:
    clock = iter([NOW, NOW + 30, NOW + 61, NOW + 61, NOW + 61])
    shard, function, destination, _ = runner(
        mapping(max_record_age_s=60, max_retry_attempts=-1),
        poison("1"),
        clock=lambda: next(clock),
    )
    shard.process(records(1))
    assert len(function.calls) == 2
    assert destination.sent[0][1]["requestContext"]["condition"] == "RecordAgeExceeded"
    assert destination.sent[0][1]["requestContext"]["approximateInvokeCount"] == 2


def test_without_destination_discarded_records_are_counted_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shard, _, destination, checkpoints = runner(
        mapping(on_failure_destination=None, max_retry_attempts=0), poison("1")
    )
    shard.process(records(2))
    assert destination.sent == [] and shard.stats.records_discarded == 2
    assert checkpoints == ["2"] and "no on-failure destination" in caplog.text


def test_a_stop_request_is_honoured_mid_retry_with_unlimited_retries_and_age():
    # MaximumRetryAttempts -1 and MaximumRecordAgeInSeconds -1: one poison record would retry
    # forever; a stop must end the retries without acknowledging or discarding anything.
    config = mapping(max_retry_attempts=-1, max_record_age_s=-1, bisect_on_error=False)
    invocations = iter(range(1_000))
    # Asked before each invocation.
    shard, function, destination, checkpoints = runner(
        config, _always_fails, should_stop=lambda: next(invocations) >= 3
    )
    shard.process(records(5) + records(5))
    assert len(function.calls) == 3 and shard.stopped
    assert checkpoints == [] and destination.sent == []  # retried from the same place next run
    assert shard.stats.records_discarded == 0 and shard.stats.retries == 3


def _always_fails(sequences: list[str]) -> Any:
    raise ValueError("poison")


def test_the_batch_start_hook_runs_before_each_batch_but_not_between_its_retries() -> None:
    """Where an alias move may switch the version: no batch runs on two versions."""
    versions = iter(["1", "1", "2"])
    current = {"version": "0"}
    seen: list[tuple[str, list[str]]] = []
    fails_once = {"5"}

    def behaviour(sequences: list[str]) -> Any:
        seen.append((current["version"], sequences))
        if fails_once & set(sequences):
            fails_once.clear()
            raise ValueError("retry me")
        return None

    shard, function, _, checkpoints = runner(mapping(batch_size=4), behaviour)
    shard.on_batch_start = lambda: current.update(version=next(versions))
    shard.process(records(10))
    # Batch 2 (records 5-8) failed once and was retried on the version it started on.
    assert seen == [
        ("1", ["1", "2", "3", "4"]),
        ("1", ["5", "6", "7", "8"]),
        ("1", ["5", "6", "7", "8"]),
        ("2", ["9", "10"]),
    ]
    assert checkpoints == ["4", "8", "10"]


def test_shard_stats_total_adds_the_counters_and_joins_the_discard_logs() -> None:
    first = ShardStats(records_read=3, retries=1, checkpoint="10", discarded=[{"seq": "1"}])
    second = ShardStats(records_read=4, bisections=2, checkpoint="20", discarded=[{"seq": "2"}])
    total = ShardStats.total([first, second])
    assert (total.records_read, total.retries, total.bisections) == (7, 1, 2)
    assert total.discarded == [{"seq": "1"}, {"seq": "2"}]
    assert total.checkpoint is None
    assert first.discarded == [{"seq": "1"}]  # the shards' own logs are left as they were
