"""Replay the scorer's dead-letter queue (``make redrive``): records back onto the input stream.

When the event source mapping gives up on a batch (retries exhausted, record too old), Lambda
sends its SQS on-failure destination a record with pointers only: ``KinesisBatchInfo`` holds the
shard id, the first and last sequence numbers, the batch size and the stream ARN. Once the
function is fixed (``make rollback``, ``make rollout``), ``redrive`` takes each such message:

1. parses it; a message that is not a Kinesis on-failure record of the input stream is kept and
   reported;
2. reads the batch back from the shard while the stream still holds it (``AT_SEQUENCE_NUMBER``
   iterator at the first sequence number, up to the last); a record no longer there (trimmed
   past the stream's retention, or the stream gone) is reported and its message kept;
3. puts every record it found back on the input stream, same data and partition key, retrying
   only the entries PutRecords failed, and appends each (shard, original sequence number) ->
   new sequence number to the journal before anything is deleted;
4. deletes the message once every record of its batch is re-put and verified: PutRecords
   returned a sequence number for each (Kinesis's acknowledgement that the record is stored).

It does not wait for the verdicts: a re-put record is then the mapping's, like any new record,
with the same retries and on-failure destination, so a record that fails again comes back to the
queue as a new message pointing at its new sequence number; nothing is lost, and the redrive
does not depend on the function running meanwhile. A re-run is safe: a record the journal
already holds is not put again (its message is only deleted), so a crash between the put and
the delete gives no second copy. Messages kept are made visible again at the end of the run.

Delivery stays at-least-once. A re-put record's verdict carries its new sequence number as
``input_sequence_number``; the journal (JSON lines, ``redriven`` entries) maps it to the record's
original shard and sequence number, so a consumer that must tell a redriven record's verdict
apart looks its ``input_sequence_number`` up there, and deduplicates on it as on any other.

Plain code over injected boto3 clients (SQS, Kinesis); the CLI (``main``) reads the stack's
``stack.env``. Least privilege: ``sqs:ReceiveMessage``, ``sqs:DeleteMessage`` and
``sqs:ChangeMessageVisibility`` on the DLQ; ``kinesis:GetShardIterator``, ``kinesis:GetRecords``
and ``kinesis:PutRecords`` on the input stream (Terraform: the ``dlq_redrive`` policy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError

from config.settings import LOCAL_DIR
from config.stack_env import read_stack_env, stack_env_path

#: Kinesis PutRecords limits: 500 entries and 5 MiB (data and partition keys) per request.
PUT_RECORDS_MAX_ENTRIES = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
GET_RECORDS_LIMIT = 1000
#: GetRecords may answer empty while behind the tip; this many empty answers end the read.
MAX_EMPTY_READS = 20
JOURNAL_NAME = "redrive-journal.jsonl"

# What became of one DLQ message (MessageOutcome.status).
REDRIVEN = "redriven"  # every record re-put (or re-put by an earlier run), message deleted
TRIMMED = "trimmed"  # some records are no longer in the stream: message kept
UNREADABLE = "unreadable"  # the shard could not be read (stream or shard gone, refused)
NOT_REDRIVEN = "not-redriven"  # PutRecords failed for some records after retries: message kept
FOREIGN = "foreign"  # not a Kinesis on-failure record of the input stream: message kept


class RedriveError(RuntimeError):
    """The redrive cannot start (no queue, no stream); nothing was read or deleted."""


@dataclass(frozen=True)
class BatchPointer:
    """``KinesisBatchInfo`` of an on-failure record: where the discarded batch lies."""

    shard_id: str
    start_sequence_number: str
    end_sequence_number: str
    batch_size: int
    stream_arn: str

    @classmethod
    def parse(cls, body: str) -> "BatchPointer":
        """The pointer in an SQS message body; ValueError saying what is wrong."""
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from exc
        info = document.get("KinesisBatchInfo") if isinstance(document, dict) else None
        if not isinstance(info, dict):
            raise ValueError("no KinesisBatchInfo (not a Kinesis on-failure record)")
        missing = [
            key
            for key in ("shardId", "startSequenceNumber", "endSequenceNumber", "streamArn")
            if not isinstance(info.get(key), str) or not info[key]
        ]
        size = info.get("batchSize")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            missing.append("batchSize")
        if missing:
            raise ValueError(f"KinesisBatchInfo lacks a valid {', '.join(missing)}")
        if int(info["startSequenceNumber"]) > int(info["endSequenceNumber"]):
            raise ValueError("KinesisBatchInfo's startSequenceNumber is after its end")
        return cls(
            info["shardId"],
            info["startSequenceNumber"],
            info["endSequenceNumber"],
            size,
            info["streamArn"],
        )


@dataclass
class MessageOutcome:
    """What the redrive did with one DLQ message."""

    message_id: str
    status: str
    detail: str
    found: int = 0  # records of the batch still in the stream
    put: int = 0  # re-put by this run
    already: int = 0  # re-put by an earlier run (journal)
    batch_size: int = 0


@dataclass
class RedriveReport:
    """Every message seen by one run, in the order received."""

    outcomes: list[MessageOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def records_put(self) -> int:
        return sum(o.put for o in self.outcomes)

    @property
    def kept(self) -> list[MessageOutcome]:
        return [o for o in self.outcomes if o.status != REDRIVEN]

    def summary(self) -> str:
        lines = [
            f"{len(self.outcomes)} DLQ message(s): {self.count(REDRIVEN)} redriven and deleted "
            f"({self.records_put} record(s) put back on the input stream, "
            f"{sum(o.already for o in self.outcomes)} put by an earlier run), "
            f"{len(self.kept)} kept"
        ]
        lines += [f"  kept {o.message_id}: {o.status}: {o.detail}" for o in self.kept]
        return "\n".join(lines)


class Journal:
    """Append-only JSON lines: each redriven record's original and new place in the stream.

    Written (and flushed to disk) before a message is deleted, so that a re-run never puts a
    record twice; also the map a consumer uses to tell a redriven record's verdict.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: dict[tuple[str, str], str] = {}
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                try:
                    entry = json.loads(line)
                    key = (entry["shard_id"], entry["original_sequence_number"])
                    self._done[key] = entry["redriven_sequence_number"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise RedriveError(
                        f"{path}:{number} is not a redrive journal entry ({exc}); nothing was "
                        "read or deleted (move the file aside only if no redrive is half done)"
                    ) from exc

    def redriven(self, shard_id: str, sequence_number: str) -> str | None:
        """The new sequence number of a record already put back, else None."""
        return self._done.get((shard_id, sequence_number))

    def record(self, entries: Iterable[Mapping[str, str]]) -> None:
        entries = list(entries)
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            for entry in entries:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        for entry in entries:
            key = (entry["shard_id"], entry["original_sequence_number"])
            self._done[key] = entry["redriven_sequence_number"]


def redrive(
    *,
    queue_url: str,
    input_stream_name: str,
    input_stream_arn: str,
    sqs: Any,
    kinesis: Any,
    journal: Journal,
    visibility_timeout_s: int = 120,
    receive_wait_s: int = 1,
    put_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> RedriveReport:
    """Redrive every message of the DLQ at ``queue_url`` (module docstring)."""
    report = RedriveReport()
    kept: dict[str, str] = {}  # message id -> receipt handle, released at the end
    try:
        while True:
            messages = _receive(sqs, queue_url, visibility_timeout_s, receive_wait_s)
            fresh = [m for m in messages if m["MessageId"] not in kept]
            for message in messages:
                if message["MessageId"] in kept:  # seen this run (visible again): keep it
                    kept[message["MessageId"]] = message["ReceiptHandle"]
            if not fresh:
                break
            for message in fresh:
                outcome = _redrive_message(
                    message,
                    input_stream_name,
                    input_stream_arn,
                    kinesis,
                    journal,
                    put_attempts,
                    sleep,
                    clock,
                )
                report.outcomes.append(outcome)
                if outcome.status == REDRIVEN:
                    _call(
                        f"delete DLQ message {message['MessageId']} (its records are re-put; "
                        "a re-run deletes it without putting them again)",
                        sqs.delete_message,
                        QueueUrl=queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                    )
                else:
                    kept[message["MessageId"]] = message["ReceiptHandle"]
    finally:
        for receipt in kept.values():  # visible again now, for the next run
            try:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
            except Exception:  # noqa: BLE001 - it becomes visible after its timeout anyway
                pass
    return report


def _receive(
    sqs: Any, queue_url: str, visibility_timeout_s: int, wait_s: int
) -> list[dict[str, Any]]:
    response = _call(
        f"receive from {queue_url}",
        sqs.receive_message,
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_s,
        VisibilityTimeout=visibility_timeout_s,
    )
    return list(response.get("Messages") or [])


def _redrive_message(
    message: Mapping[str, Any],
    stream_name: str,
    stream_arn: str,
    kinesis: Any,
    journal: Journal,
    put_attempts: int,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> MessageOutcome:
    message_id = str(message["MessageId"])
    try:
        pointer = BatchPointer.parse(str(message.get("Body", "")))
    except ValueError as exc:
        return MessageOutcome(message_id, FOREIGN, str(exc))
    outcome = MessageOutcome(message_id, FOREIGN, "", batch_size=pointer.batch_size)
    if pointer.stream_arn != stream_arn:
        outcome.detail = f"from stream {pointer.stream_arn}, not the input stream {stream_arn}"
        return outcome
    try:
        records = read_batch(kinesis, stream_name, pointer)
    except (_Unreadable, RedriveError) as exc:  # this message's shard only: the others go on
        outcome.status, outcome.detail = UNREADABLE, str(exc)
        return outcome
    outcome.found = len(records)
    pending = [
        r for r in records if journal.redriven(pointer.shard_id, r["SequenceNumber"]) is None
    ]
    outcome.already = len(records) - len(pending)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock()))

    def journal_chunk(chunk: list[tuple[str, str, str, str]]) -> None:
        journal.record(
            {
                "message_id": message_id,
                "shard_id": pointer.shard_id,
                "original_sequence_number": original,
                "partition_key": key,
                "redriven_shard_id": shard,
                "redriven_sequence_number": new,
                "redriven_at": stamp,
            }
            for original, key, shard, new in chunk
        )

    entries, failures = put_back(
        kinesis, stream_name, pending, put_attempts, sleep, on_put=journal_chunk
    )
    outcome.put = len(entries)
    missing = pointer.batch_size - len(records)
    if failures:
        outcome.status = NOT_REDRIVEN
        outcome.detail = (
            f"{len(failures)} of {len(pending)} record(s) not put back after {put_attempts} "
            f"attempts ({failures[0]}); the {len(entries)} put are journaled, a re-run puts only "
            "the rest"
        )
    elif missing > 0:
        outcome.status = TRIMMED
        outcome.detail = (
            f"{missing} of {pointer.batch_size} record(s) of {pointer.shard_id} "
            f"{pointer.start_sequence_number}..{pointer.end_sequence_number} are no longer in "
            f"the stream (trimmed past its retention); the {len(records)} still there are put "
            "back; the message is kept as the record of what is lost"
        )
    else:
        outcome.status = REDRIVEN
        outcome.detail = f"{len(records)} record(s) re-put"
    return outcome


class _Unreadable(Exception):
    """The shard cannot be read at the batch's position."""


def read_batch(kinesis: Any, stream_name: str, pointer: BatchPointer) -> list[dict[str, Any]]:
    """The records of the batch still in the shard (``SequenceNumber``, ``Data``,
    ``PartitionKey``), in order; fewer than ``batch_size`` when some are trimmed."""
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name,
            ShardId=pointer.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=pointer.start_sequence_number,
        )["ShardIterator"]
    except Exception as exc:
        code = _error_code(exc)
        if code is None:
            raise
        raise _Unreadable(
            f"cannot read {pointer.shard_id} at {pointer.start_sequence_number}: {code}: {exc}"
        ) from exc
    start, end = int(pointer.start_sequence_number), int(pointer.end_sequence_number)
    found: list[dict[str, Any]] = []
    empty_reads = 0
    while iterator:
        response = _call(
            f"read {stream_name}/{pointer.shard_id}",
            kinesis.get_records,
            ShardIterator=iterator,
            Limit=GET_RECORDS_LIMIT,
        )
        records = response.get("Records") or []
        for record in records:
            number = int(record["SequenceNumber"])
            if start <= number <= end:
                found.append(record)
        last = int(records[-1]["SequenceNumber"]) if records else None
        if (last is not None and last >= end) or len(found) >= pointer.batch_size:
            break
        if not records:
            empty_reads += 1
            if not response.get("MillisBehindLatest") or empty_reads >= MAX_EMPTY_READS:
                break  # the end of the shard: nothing more to come for this batch
        iterator = response.get("NextShardIterator")
    return found


def put_back(
    kinesis: Any,
    stream_name: str,
    records: Sequence[Mapping[str, Any]],
    attempts: int,
    sleep: Callable[[float], None],
    on_put: Callable[[list[tuple[str, str, str, str]]], None] = lambda entries: None,
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """PutRecords ``records`` (same data and partition key) in chunks within Kinesis limits,
    retrying only failed entries (a request refused as a whole is retried too); returns
    (original, partition key, shard, new sequence number) for each put, and the last error of
    each record still not put. ``on_put`` gets each request's successes as soon as they are in."""
    done: list[tuple[str, str, str, str]] = []
    failures: list[str] = []
    for chunk in _chunks(records):
        waiting = list(chunk)
        again: list[tuple[Mapping[str, Any], str]] = []
        for attempt in range(attempts):
            if attempt:
                sleep(min(0.1 * 2**attempt, 2.0))
            try:
                response = _call(
                    f"put records back on {stream_name}",
                    kinesis.put_records,
                    StreamName=stream_name,
                    Records=[
                        {"Data": r["Data"], "PartitionKey": r["PartitionKey"]} for r in waiting
                    ],
                )
            except RedriveError as exc:
                again = [(record, str(exc)) for record in waiting]
                continue
            again, put = [], []
            for record, result in zip(waiting, response["Records"]):
                if result.get("SequenceNumber"):
                    put.append(
                        (
                            str(record["SequenceNumber"]),
                            str(record["PartitionKey"]),
                            str(result.get("ShardId", "")),
                            str(result["SequenceNumber"]),
                        )
                    )
                else:
                    again.append(
                        (record, f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}")
                    )
            on_put(put)
            done += put
            waiting = [record for record, _ in again]
            if not waiting:
                break
        failures += [error for _, error in again]
    return done, failures


def _chunks(records: Sequence[Mapping[str, Any]]) -> Iterable[list[Mapping[str, Any]]]:
    chunk: list[Mapping[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(record["Data"]) + len(str(record["PartitionKey"]).encode())
        if chunk and (
            len(chunk) == PUT_RECORDS_MAX_ENTRIES or size + record_size > PUT_RECORDS_MAX_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


def _call(what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return method(**kwargs)
    except Exception as exc:
        code = _error_code(exc)
        if code is None:
            raise
        raise RedriveError(f"cannot {what}: {code}: {exc}") from exc


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code") or "") or None


def main(argv: Sequence[str] | None = None) -> int:
    """``make redrive``: the DLQ of the stack in ``.local/stack.env`` back onto its input."""
    parser = argparse.ArgumentParser(prog="python -m deployment.redrive", description=__doc__)
    parser.add_argument("--local-dir", type=Path, default=LOCAL_DIR)
    args = parser.parse_args(argv)
    import boto3  # noqa: PLC0415 - only when talking to AWS

    env = {**os.environ, **read_stack_env(stack_env_path(args.local_dir))}
    needed = ("DLQ_URL", "INPUT_STREAM_NAME", "INPUT_STREAM_ARN")
    missing = [key for key in needed if not env.get(key)]
    if missing:
        print(
            f"error: {', '.join(missing)} not in {stack_env_path(args.local_dir)} or the "
            "environment: deploy the stack first (make deploy)",
            file=sys.stderr,
        )
        return 1
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
    )
    endpoint = env.get("AWS_ENDPOINT_URL") or None
    journal_path = args.local_dir / JOURNAL_NAME
    try:
        report = redrive(
            queue_url=env["DLQ_URL"],
            input_stream_name=env["INPUT_STREAM_NAME"],
            input_stream_arn=env["INPUT_STREAM_ARN"],
            sqs=session.client("sqs", endpoint_url=endpoint),
            kinesis=session.client("kinesis", endpoint_url=endpoint),
            journal=Journal(journal_path),
        )
    except (RedriveError, BotoCoreError) as exc:  # no queue, no endpoint, no credentials
        print(f"error: {exc}; nothing deleted", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"journal (original -> redriven sequence numbers): {journal_path}")
    return 0 if not report.kept else 2


if __name__ == "__main__":
    sys.exit(main())
