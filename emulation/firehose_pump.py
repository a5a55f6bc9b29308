"""Firehose for the embedded emulator: read each Kinesis-sourced delivery stream's source stream
and write its S3 objects as Firehose would (``make demo``, integration tests).

    python -m emulation.firehose_pump run [--until-idle S] [--max-seconds N] [--no-persist]
    python -m emulation.firehose_pump count [--bucket B] [--prefix archive/]

moto stores a delivery stream's configuration but never reads its Kinesis source, buffers or
compresses. This pump does, for every delivery stream the emulator's Firehose API lists with a
Kinesis source (so it follows what Terraform created), with Firehose's semantics:

- each shard is read from the delivery stream's creation on (LATEST when it was created), then
  after a checkpoint per shard that advances only once the records are in S3: a restart
  resumes, and a crash between the write and the checkpoint writes records again
  (at-least-once, as Firehose; consumers deduplicate);
- records are buffered per delivery stream until the buffering hints' size (MiB, before
  compression) or interval (seconds) is reached, and on stop;
- an object holds each record's data followed by "\\n" (the AppendDelimiterToRecord processor),
  GZIP-compressed when configured, under the prefix evaluated at the approximate arrival time
  of its oldest record (``!{timestamp:yyyy-MM-dd}`` etc.), named
  ``<delivery-stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>[.gz]``;
- an S3 error is retried with backoff; a buffer that still cannot be written is kept (and the
  stream not read further) until a later attempt succeeds: nothing is dropped.

Records are archived byte for byte, as Firehose does: a record that is not JSON is still one
line (monitoring counts it), and one whose data contains a newline (a record put
pretty-printed) is counted and logged: it reads as several lines, each an invalid line to
monitoring, which still reads the object's other lines (decision 0013). A configuration the
pump cannot reproduce (another processor, format conversion, dynamic partitioning, another
compression) is refused with the reason, in ``health()``, instead of being written in a
different layout.

On LocalStack and AWS, Firehose itself does all this and the pump is not started.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import gzip
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from config.settings import LOCAL_DIR

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: GetRecords limit per shard and poll (Kinesis's maximum).
READ_LIMIT = 10_000
#: How often the loop polls the shards, and lists the delivery streams again.
POLL_INTERVAL_S = 0.2
RELIST_S = 2.0
#: S3 PutObject attempts per flush before the buffer is kept for a later flush.
S3_ATTEMPTS = 5
S3_BACKOFF_S = 0.2
STOP_TIMEOUT_S = 15.0
CHECKPOINTS_NAME = "checkpoints.json"
LOCK_NAME = "pump.lock"
EXTENSIONS = {"GZIP": ".gz", "UNCOMPRESSED": ""}
# Java DateTimeFormatter letters Firehose prefixes use, as strftime directives.
_JAVA_DATE = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_EXPRESSION = re.compile(r"!\{([^:}]*):([^}]*)\}")
_JAVA_TOKEN = re.compile(r"'([^']*)'|([A-Za-z])\2*|[^A-Za-z']+")


class PumpConfigError(ValueError):
    """A delivery stream configuration the pump cannot reproduce faithfully."""


class PumpBusy(RuntimeError):
    """Another pump already uses these checkpoints (it would write every record twice)."""


# ---------------------------------------------------------------------------------------------
# Prefixes and object names
# ---------------------------------------------------------------------------------------------


def java_date(pattern: str, moment: datetime) -> str:
    """Format `moment` with a Java DateTimeFormatter pattern (the letters Firehose uses)."""
    out = []
    for match in _JAVA_TOKEN.finditer(pattern):
        quoted, letter = match.group(1), match.group(2)
        if quoted is not None:
            out.append(quoted or "'")
        elif letter is not None:
            directive = _JAVA_DATE.get(match.group(0))
            if directive is None:
                raise PumpConfigError(
                    f"timestamp pattern {pattern!r}: {match.group(0)!r} is not supported "
                    f"(use {', '.join(_JAVA_DATE)})"
                )
            out.append(moment.strftime(directive))
        else:
            out.append(match.group(0))
    return "".join(out)


def evaluate_prefix(template: str, moment: datetime, error_output_type: str | None = None) -> str:
    """The S3 prefix Firehose writes an object under (`moment`: oldest record's arrival, UTC).

    An empty template is Firehose's default ``YYYY/MM/dd/HH/``.
    """
    if not template:
        return moment.strftime("%Y/%m/%d/%H/")

    def expression(match: re.Match[str]) -> str:
        namespace, value = match.group(1), match.group(2)
        if namespace == "timestamp":
            return java_date(value, moment)
        if namespace == "firehose" and value == "error-output-type":
            if error_output_type is None:
                raise PumpConfigError(f"{template!r}: error-output-type outside an error prefix")
            return error_output_type
        if namespace == "firehose" and value == "random-string":
            return uuid.uuid4().hex[:11]
        raise PumpConfigError(f"prefix {template!r}: !{{{namespace}:{value}}} is not supported")

    return _EXPRESSION.sub(expression, template)


# ---------------------------------------------------------------------------------------------
# Delivery stream configurations (from the emulator's Firehose API)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryStream:
    """What the pump needs of one Kinesis-sourced delivery stream with an S3 destination."""

    name: str
    version: str
    created: float
    source_stream_arn: str
    bucket: str
    prefix: str
    error_prefix: str
    buffer_bytes: int
    buffer_interval_s: float
    compression: str
    append_delimiter: bool

    def object_key(self, moment: datetime) -> str:
        """`<evaluated prefix><name>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><extension>`."""
        stamp = moment.strftime("%Y-%m-%d-%H-%M-%S")
        suffix = f"{self.name}-{self.version}-{stamp}-{uuid.uuid4()}"
        return evaluate_prefix(self.prefix, moment) + suffix + EXTENSIONS[self.compression]


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def parse_delivery_stream(description: dict[str, Any]) -> DeliveryStream | None:
    """The pump's view of a DescribeDeliveryStream result; None without a Kinesis source.

    Raises PumpConfigError for what the pump would not write as Firehose does.
    """
    source = (description.get("Source") or {}).get("KinesisStreamSourceDescription")
    if not source:
        return None
    name = description["DeliveryStreamName"]
    (destination,) = description["Destinations"]
    s3 = destination.get("ExtendedS3DestinationDescription")
    if s3 is None:
        raise PumpConfigError(f"{name}: only an extended S3 destination is supported")
    conversion = s3.get("DataFormatConversionConfiguration") or {}
    if conversion.get("Enabled"):
        raise PumpConfigError(f"{name}: record format conversion is not supported")
    if (s3.get("DynamicPartitioningConfiguration") or {}).get("Enabled"):
        raise PumpConfigError(f"{name}: dynamic partitioning is not supported")
    compression = s3.get("CompressionFormat", "UNCOMPRESSED")
    if compression not in EXTENSIONS:
        raise PumpConfigError(f"{name}: compression {compression} is not supported")
    processing = s3.get("ProcessingConfiguration") or {}
    processors = (processing.get("Processors") or []) if processing.get("Enabled") else []
    kinds = [p.get("Type") for p in processors]
    if any(kind != "AppendDelimiterToRecord" for kind in kinds):
        raise PumpConfigError(f"{name}: processors {kinds} (only AppendDelimiterToRecord)")
    for processor in processors:
        for parameter in processor.get("Parameters") or []:
            if parameter.get("ParameterName") == "Delimiter" and parameter.get(
                "ParameterValue"
            ) not in ("\\n", "\n"):
                raise PumpConfigError(f"{name}: only the newline delimiter is supported")
    hints = s3.get("BufferingHints") or {}
    stream = DeliveryStream(
        name=name,
        version=str(description.get("VersionId", "1")),
        created=_epoch(description.get("CreateTimestamp", 0)),
        source_stream_arn=source["KinesisStreamARN"],
        bucket=s3["BucketARN"].rsplit(":", 1)[1],
        prefix=s3.get("Prefix") or "",
        error_prefix=s3.get("ErrorOutputPrefix") or "",
        buffer_bytes=int(hints.get("SizeInMBs", 5)) * MIB,
        buffer_interval_s=float(hints.get("IntervalInSeconds", 300)),
        compression=compression,
        append_delimiter=bool(processors),
    )
    evaluate_prefix(stream.prefix, datetime.now(timezone.utc))  # refuse what cannot evaluate
    return stream


def list_delivery_streams(firehose: Any) -> tuple[list[DeliveryStream], dict[str, str]]:
    """Kinesis-sourced delivery streams, and the refused ones with the reason."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"DeliveryStreamType": "KinesisStreamAsSource"}
    while True:
        page = firehose.list_delivery_streams(**kwargs)
        names.extend(page.get("DeliveryStreamNames", []))
        if not page.get("HasMoreDeliveryStreams") or not names:
            break
        kwargs["ExclusiveStartDeliveryStreamName"] = names[-1]
    streams, refused = [], {}
    for name in names:
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)
        try:
            stream = parse_delivery_stream(description["DeliveryStreamDescription"])
        except PumpConfigError as error:
            refused[name] = str(error)
            continue
        if stream is not None:
            streams.append(stream)
    return streams, refused


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


class CheckpointStore:
    """Per delivery stream and shard, the last sequence number written to S3.

    A JSON file (written atomically) or, with ``path=None``, memory only. A checkpoint belongs
    to one delivery stream instance (name, creation time and source): a re-created stream, or
    a new emulator, starts afresh.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, Any] = {}
        if path is not None and path.exists():
            self._data = json.loads(path.read_text())

    @staticmethod
    def _identity(stream: DeliveryStream) -> dict[str, Any]:
        return {"created": stream.created, "source": stream.source_stream_arn}

    def positions(self, stream: DeliveryStream) -> dict[str, str]:
        entry = self._data.get(stream.name)
        if not entry or entry.get("identity") != self._identity(stream):
            return {}
        return dict(entry.get("shards", {}))

    def commit(self, stream: DeliveryStream, positions: dict[str, str]) -> None:
        shards = self.positions(stream)
        shards.update(positions)
        self._data[stream.name] = {"identity": self._identity(stream), "shards": shards}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True) + "\n")
            tmp.replace(self.path)


# ---------------------------------------------------------------------------------------------
# The pump
# ---------------------------------------------------------------------------------------------


@dataclass
class PumpStats:
    """Counters since the pump was made (what ``health()`` and ``run`` report)."""

    records_read: int = 0
    records_delivered: int = 0
    objects_written: int = 0
    bytes_written: int = 0
    s3_retries: int = 0
    s3_failed_flushes: int = 0
    records_with_newline: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Buffer:
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    oldest_arrival: float | None = None
    opened: float | None = None
    positions: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # fixed at the first attempt: a retried write replaces, never adds


@dataclass
class _Shard:
    iterator: str | None
    last_read: str | None
    closed: bool = False


class FirehosePump:
    """Firehose's Kinesis-to-S3 delivery for every Kinesis-sourced delivery stream.

    ``poll_once()`` does one round (list if due, read every shard once, write what is due);
    ``start()``/``stop()``/``health()`` run it in a thread (the background service's poller
    interface); ``run()`` loops in the caller's thread. ``stop()`` and ``flush(force=True)``
    write whatever is buffered.
    """

    name = "firehose"

    def __init__(
        self,
        firehose: Any,
        kinesis: Any,
        s3: Any,
        *,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval_s: float = POLL_INTERVAL_S,
        relist_s: float = RELIST_S,
        s3_attempts: int = S3_ATTEMPTS,
        s3_backoff_s: float = S3_BACKOFF_S,
        read_limit: int = READ_LIMIT,
    ) -> None:
        self.firehose, self.kinesis, self.s3 = firehose, kinesis, s3
        self.state_dir = state_dir
        self.checkpoints = CheckpointStore(state_dir / CHECKPOINTS_NAME if state_dir else None)
        self.clock, self.monotonic, self.sleep = clock, monotonic, sleep
        self.poll_interval_s, self.relist_s = poll_interval_s, relist_s
        self.s3_attempts, self.s3_backoff_s = s3_attempts, s3_backoff_s
        self.read_limit = read_limit
        self.stats = PumpStats()
        self.streams: dict[str, DeliveryStream] = {}
        self.refused: dict[str, str] = {}
        self.failing: dict[str, str] = {}
        self.stream_errors: dict[str, str] = {}
        self.last_error: str | None = None
        self._buffers: dict[str, _Buffer] = {}
        self._shards: dict[tuple[str, str], _Shard] = {}
        self._listed_at: float | None = None
        self._shard_lists: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file: IO[str] | None = None

    # -- one round ------------------------------------------------------------------------------

    def refresh(self) -> list[DeliveryStream]:
        """List the delivery streams again (a new, changed or deleted one is followed)."""
        with self._lock:
            streams, self.refused = list_delivery_streams(self.firehose)
            self._shard_lists.clear()
            for name in self.refused:
                log.error("delivery stream %s not pumped: %s", name, self.refused[name])
            current = {s.name: s for s in streams}
            for name, old in list(self.streams.items()):
                if current.get(name) != old:
                    self._flush_stream(old, force=True)  # what was read for the old config
                    self._buffers.pop(name, None)
                    self.failing.pop(name, None)
                    self.stream_errors.pop(name, None)
                    for key in [k for k in self._shards if k[0] == name]:
                        del self._shards[key]
            self.streams = current
            self._listed_at = self.monotonic()
            return streams

    def poll_once(self) -> int:
        """Read every shard once and write the buffers that are due; returns records read."""
        with self._lock:
            if self._listed_at is None or self.monotonic() - self._listed_at >= self.relist_s:
                self.refresh()
            read = 0
            for stream in self.streams.values():
                if stream.name in self.failing:
                    # Back-pressure: retry the kept buffer before reading more.
                    self._flush_stream(stream, force=True)
                    if stream.name in self.failing:
                        continue
                try:
                    read += self._read_stream(stream)
                    self.stream_errors.pop(stream.name, None)
                except (ClientError, BotoCoreError) as error:
                    # One stream's source failing (deleted, throttled) must not stop the others.
                    self.stream_errors[stream.name] = f"reading {stream.source_stream_arn}: {error}"
                    log.warning("%s: %s", stream.name, self.stream_errors[stream.name])
            self.flush()
            return read

    def flush(self, force: bool = False) -> int:
        """Write every buffer whose hints are reached (all of them with `force`)."""
        with self._lock:
            return sum(self._flush_stream(s, force) for s in list(self.streams.values()))

    def _read_stream(self, stream: DeliveryStream) -> int:
        committed = self.checkpoints.positions(stream)
        buffer = self._buffers.setdefault(stream.name, _Buffer())
        read = 0
        for shard_id in self._shard_ids(stream.source_stream_arn):
            shard = self._shards.get((stream.name, shard_id))
            if shard is None:
                shard = _Shard(iterator=None, last_read=committed.get(shard_id))
                self._shards[(stream.name, shard_id)] = shard
            if shard.closed:
                continue
            if shard.iterator is None:
                shard.iterator = self._iterator(stream, shard_id, shard.last_read)
            try:
                page = self.kinesis.get_records(
                    ShardIterator=shard.iterator,
                    Limit=self.read_limit,
                    StreamARN=stream.source_stream_arn,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ExpiredIteratorException":
                    shard.iterator = None  # resume after the last record read
                    continue
                raise
            shard.iterator = page.get("NextShardIterator")
            shard.closed = shard.iterator is None
            for record in page.get("Records", []):
                self._add(stream, buffer, shard_id, record)
                shard.last_read = record["SequenceNumber"]
                read += 1
                full = buffer.size >= stream.buffer_bytes
                if full and stream.name not in self.failing:  # the size hint: write at once
                    self._flush_stream(stream)
                    buffer = self._buffers[stream.name]
            if stream.name in self.failing:
                break  # the kept buffer is retried before anything else is read
        return read

    def _add(
        self, stream: DeliveryStream, buffer: _Buffer, shard_id: str, record: dict[str, Any]
    ) -> None:
        data: bytes = record["Data"]
        if stream.append_delimiter and b"\n" in data:
            self.stats.records_with_newline += 1
            log.warning(
                "%s: record %s contains a newline: it will read as %d lines",
                stream.name,
                record["SequenceNumber"],
                data.count(b"\n") + 1,
            )
        line = data + b"\n" if stream.append_delimiter else data
        if not buffer.lines:
            buffer.opened = self.monotonic()
        arrival = _epoch(record.get("ApproximateArrivalTimestamp", self.clock()))
        if buffer.oldest_arrival is None or arrival < buffer.oldest_arrival:
            buffer.oldest_arrival = arrival
        buffer.lines.append(line)
        buffer.size += len(line)
        buffer.positions[shard_id] = record["SequenceNumber"]
        self.stats.records_read += 1

    def _shard_ids(self, stream_arn: str) -> list[str]:
        """The stream's shards, listed again with the delivery streams (every `relist_s`)."""
        if stream_arn not in self._shard_lists:
            self._shard_lists[stream_arn] = self._list_shards(stream_arn)
        return self._shard_lists[stream_arn]

    def _list_shards(self, stream_arn: str) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamARN": stream_arn}
        while True:
            page = self.kinesis.list_shards(**kwargs)
            shards.extend(s["ShardId"] for s in page.get("Shards", []))
            if not page.get("NextToken"):
                return shards
            kwargs = {"NextToken": page["NextToken"]}

    def _iterator(self, stream: DeliveryStream, shard_id: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamARN": stream.source_stream_arn, "ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            # Firehose reads a stream from LATEST when the delivery stream is created.
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=stream.created)
        return str(self.kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def _due(self, stream: DeliveryStream, buffer: _Buffer) -> bool:
        if not buffer.lines:
            return False
        waited = self.monotonic() - (buffer.opened or 0.0)
        return buffer.size >= stream.buffer_bytes or waited >= stream.buffer_interval_s

    def _flush_stream(self, stream: DeliveryStream, force: bool = False) -> int:
        buffer = self._buffers.get(stream.name)
        if buffer is None or not buffer.lines or not (force or self._due(stream, buffer)):
            return 0
        moment = datetime.fromtimestamp(buffer.oldest_arrival or self.clock(), timezone.utc)
        buffer.key = buffer.key or stream.object_key(moment)
        raw = b"".join(buffer.lines)
        body = gzip.compress(raw, mtime=0) if stream.compression == "GZIP" else raw
        if not self._put(stream, buffer.key, body):
            return 0
        # In S3 now: only then may a restart skip these records.
        self.checkpoints.commit(stream, buffer.positions)
        self.stats.records_delivered += len(buffer.lines)
        self.stats.objects_written += 1
        self.stats.bytes_written += len(body)
        self._buffers[stream.name] = _Buffer()
        self.failing.pop(stream.name, None)
        return 1

    def _put(self, stream: DeliveryStream, key: str, body: bytes) -> bool:
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        for attempt in range(1, self.s3_attempts + 1):
            try:
                self.s3.put_object(Bucket=stream.bucket, Key=key, Body=body, ContentMD5=md5)
                return True
            except (ClientError, BotoCoreError) as error:
                reason = f"PutObject s3://{stream.bucket}/{key} failed (attempt {attempt}): {error}"
                log.warning("%s: %s", stream.name, reason)
                if attempt < self.s3_attempts:
                    self.stats.s3_retries += 1
                    self.sleep(self.s3_backoff_s * 2 ** (attempt - 1))
        self.stats.s3_failed_flushes += 1
        self.failing[stream.name] = reason + "; the records stay buffered and are retried"
        log.error("%s: %s", stream.name, self.failing[stream.name])
        return False

    # -- the loop -------------------------------------------------------------------------------

    def _acquire(self) -> None:
        if self.state_dir is None or self._lock_file is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.state_dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PumpBusy(
                f"another Firehose pump uses the checkpoints in {self.state_dir}; a second one "
                "would write every record twice"
            ) from None
        self._lock_file = handle

    def _release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def run(self, until_idle: float | None = None, max_seconds: float | None = None) -> PumpStats:
        """Poll until stopped, `until_idle` seconds without records, or `max_seconds`; then
        write what is buffered."""
        self._acquire()
        start = idle_since = self.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if self.poll_once():
                        idle_since = self.monotonic()
                    self.last_error = None
                except Exception as error:  # noqa: BLE001 - reported by health(), retried
                    self.last_error = f"{type(error).__name__}: {error}"
                    log.exception("poll failed, retrying: %s", self.last_error)
                now = self.monotonic()
                if until_idle is not None and now - idle_since >= until_idle:
                    break
                if max_seconds is not None and now - start >= max_seconds:
                    break
                self._stop.wait(self.poll_interval_s)
            return self.stats
        finally:
            try:
                self.flush(force=True)
            finally:
                self._release()

    def start(self) -> None:
        """Run the loop in a thread of its own; return at once."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._acquire()  # refuse at once, in the caller, when another pump holds the lock
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="firehose-pump", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the loop, writing whatever is buffered (Firehose's flush on stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def health(self) -> dict[str, Any]:
        """``{"healthy", "detail", "streams", ...counters}``: unhealthy while a buffer cannot be
        written, a configuration is refused or polling fails."""
        with self._lock:
            reasons = {**self.refused, **self.stream_errors, **self.failing}
            problems = [f"{name}: {why}" for name, why in reasons.items()]
            if self.last_error:
                problems.append(self.last_error)
            buffered = sum(len(b.lines) for b in self._buffers.values())
            detail = "; ".join(problems) or (
                f"{len(self.streams)} delivery stream(s), {buffered} record(s) buffered"
            )
            return {
                "healthy": not problems,
                "detail": detail,
                "streams": sorted(self.streams),
                "buffered": buffered,
                **self.stats.to_dict(),
            }


# ---------------------------------------------------------------------------------------------
# The archive, counted (make demo)
# ---------------------------------------------------------------------------------------------


def count_objects(s3: Any, bucket: str, prefixes: Iterable[str]) -> dict[str, int]:
    """How many objects each prefix holds (e.g. the archive's verdicts and observations)."""
    counts: dict[str, int] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        counts[prefix] = sum(
            page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        )
    return counts


def default_state_dir() -> Path:
    """Where the pump keeps its checkpoints: ``<local dir>/firehose-pump``."""
    return LOCAL_DIR / "firehose-pump"


def stack_client(service: str) -> Any:
    """A boto3 client on the local stack: the environment's settings, else those `make up`
    wrote to .local/stack.env (endpoint, region, the emulator's dummy keys)."""
    import boto3  # noqa: PLC0415

    from config.stack_env import read_stack_env, stack_env_path  # noqa: PLC0415

    env = {**read_stack_env(stack_env_path()), **os.environ}
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
    )
    return session.client(service, endpoint_url=env.get("AWS_ENDPOINT_URL") or None)


def make_pump(state_dir: Path | None = None, **kwargs: Any) -> FirehosePump:
    """A pump on the local stack (see `stack_client`)."""
    return FirehosePump(
        stack_client("firehose"),
        stack_client("kinesis"),
        stack_client("s3"),
        state_dir=state_dir,
        **kwargs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m emulation.firehose_pump", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="pump every Kinesis-sourced delivery stream")
    run_p.add_argument("--until-idle", type=float, default=None, metavar="SECONDS")
    run_p.add_argument("--max-seconds", type=float, default=None, metavar="N")
    run_p.add_argument("--no-persist", action="store_true", help="checkpoints in memory only")
    count_p = sub.add_parser("count", help="count the objects under archive prefixes")
    count_p.add_argument("--bucket", default=None, help="default: DATA_BUCKET")
    count_p.add_argument("--prefix", action="append", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[firehose-pump] %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "run":
            pump = make_pump(None if args.no_persist else default_state_dir())
            stats = pump.run(until_idle=args.until_idle, max_seconds=args.max_seconds)
            print(json.dumps({**stats.to_dict(), "health": pump.health()}, indent=2))
            return 0 if pump.health()["healthy"] else 1
        from config.stack_env import read_stack_env, stack_env_path  # noqa: PLC0415

        bucket = args.bucket or read_stack_env(stack_env_path()).get("DATA_BUCKET")
        if not bucket:
            print("error: no --bucket and no DATA_BUCKET (make deploy)", file=sys.stderr)
            return 2
        prefixes = args.prefix or ["archive/verdicts/", "archive/observations/"]
        print(json.dumps(count_objects(stack_client("s3"), bucket, prefixes), indent=2))
        return 0
    except PumpBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"error talking to the emulator ({error}); is it up and deployed?", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
