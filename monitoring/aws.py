"""boto3 adapters: the only monitoring module that talks to AWS (or the emulator).

Each adapter is a small class with an injected client, so the domain code depends on the
methods below, and tests swap in fakes (or moto). No endpoint is hard-coded: boto3 reads
``AWS_ENDPOINT_URL`` itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from botocore.exceptions import ClientError

from monitoring.alarms import AlarmSpec
from monitoring.inputs import CheckpointGap, StreamRead
from monitoring.state import StateConflict

log = logging.getLogger(__name__)

# PutMetricData accepts up to 1,000 MetricDatum per call.
_METRICS_PER_CALL = 1000
# The checkpoint of a closed shard read to its end: nothing more to read, and its expiry later
# (after a reshard) is no gap.
SHARD_END = "SHARD_END"
# GetShardIterator's answers to a sequence number that is not (or no longer) in the shard.
_STALE_CHECKPOINT_ERRORS = ("InvalidArgumentException", "ResourceNotFoundException")
_RENEWALS = 3  # expired iterators renewed per shard and read before giving up


def _client(service: str, client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3  # noqa: PLC0415 - only when no client is injected

    return boto3.client(service)


class KinesisStreamReader:
    """Reads every record of a stream after a per-shard checkpoint, and says when it cannot.

    Each shard is read from ``AT_SEQUENCE_NUMBER`` its checkpoint: the first record returned
    must be the checkpoint's own record (then skipped). When it is not (AWS starts at the trim
    horizon once the record has expired), when no record comes back at all (a recreated stream:
    the checkpoint points past its end; moto), when Kinesis refuses the sequence number
    (``InvalidArgumentException``, ``ResourceNotFoundException``), or when a checkpointed
    shard is gone, the read reports a :class:`CheckpointGap` and restarts that shard at its
    oldest record (TRIM_HORIZON), so trimmed data shows up as a counted gap, never as a quiet
    window. An iterator that expires mid-read is renewed after the last record read.
    """

    def __init__(self, stream_name: str, client: Any | None = None, page_limit: int = 10_000):
        self.stream_name = stream_name
        self.client = _client("kinesis", client)
        self.page_limit = page_limit

    def shard_ids(self) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            page = self.client.list_shards(**kwargs)
            shards.extend(s["ShardId"] for s in page["Shards"])
            if not page.get("NextToken"):
                return shards
            kwargs = {"NextToken": page["NextToken"]}

    def read(self, checkpoint: Mapping[str, str], max_records: int = 100_000) -> StreamRead:
        """The records after ``checkpoint`` (shard -> sequence number), oldest first per shard,
        the new checkpoint, the gaps found and the lag. Stops at the tip or at ``max_records``
        (the rest waits for the next read; the lag then says how far behind it is)."""
        result = StreamRead([], dict(checkpoint))
        shard_ids = self.shard_ids()
        gone = [shard for shard in checkpoint if shard not in shard_ids]
        recreated = bool(gone) and len(gone) == len(checkpoint)
        for shard_id in gone:
            position = result.checkpoint.pop(shard_id)
            if position != SHARD_END:  # a closed shard read to its end may expire quietly
                reason = (
                    "none of the checkpoint's shards is in the stream any more (recreated?)"
                    if recreated
                    else "the shard is no longer in the stream"
                )
                result.gaps.append(CheckpointGap(self.stream_name, shard_id, position, reason))
        lags: list[int] = []
        for shard_id in shard_ids:
            if len(result.records) >= max_records:
                break
            if checkpoint.get(shard_id) == SHARD_END:
                continue
            lag = self._read_shard(shard_id, checkpoint.get(shard_id), result, max_records)
            if lag is not None:
                lags.append(lag)
        result.lag_ms = max(lags) if lags else None
        return result

    def _read_shard(
        self, shard_id: str, checkpoint: str | None, result: StreamRead, max_records: int
    ) -> int | None:
        """Append one shard's new records to ``result``; return its MillisBehindLatest."""

        def gap(reason: str) -> str:
            result.gaps.append(CheckpointGap(self.stream_name, shard_id, checkpoint, reason))
            return self._iterator(shard_id)  # restart at the oldest record

        expected = checkpoint  # the record the first page must start with
        last: str | None = None  # the last sequence number read (or verified)
        try:
            iterator = self._iterator(shard_id, at=checkpoint)
        except ClientError as exc:
            if _error_code(exc) not in _STALE_CHECKPOINT_ERRORS:
                raise
            iterator, expected = gap(f"Kinesis refused the checkpoint: {_error_code(exc)}"), None
        lag: int | None = None
        renewals = 0
        while iterator and len(result.records) < max_records:
            try:
                page = self.client.get_records(
                    ShardIterator=iterator,
                    Limit=min(self.page_limit, max_records - len(result.records)),
                )
            except ClientError as exc:
                if _error_code(exc) != "ExpiredIteratorException" or renewals >= _RENEWALS:
                    raise
                renewals += 1
                iterator = self._iterator(shard_id, at=expected, after=last)
                continue
            records = returned = page.get("Records", [])
            lag = page.get("MillisBehindLatest")
            if expected is not None:
                if records and records[0]["SequenceNumber"] == expected:
                    last, expected, records = expected, None, records[1:]
                elif records:
                    first = records[0]["SequenceNumber"]
                    iterator, expected = gap(f"its record is gone; the oldest is {first}"), None
                    continue
                elif not lag:  # at the tip, and the checkpoint's record never came back
                    iterator, expected = gap("its record is not in the shard"), None
                    continue
            for record in records:
                result.records.append(record["Data"])
                last = result.checkpoint[shard_id] = record["SequenceNumber"]
            iterator = page.get("NextShardIterator")
            # At the tip: nothing returned and nothing behind (the lag field may be absent).
            if not returned and not lag and expected is None:
                lag = lag or 0
                break
        if not iterator:
            result.checkpoint[shard_id] = SHARD_END  # a closed shard, read to its end
        return lag

    def _iterator(self, shard_id: str, at: str | None = None, after: str | None = None) -> str:
        """A shard iterator after ``after``, else at ``at``, else at the oldest record."""
        if after:
            position = {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": after,
            }
        elif at:
            position = {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": at}
        else:
            position = {"ShardIteratorType": "TRIM_HORIZON"}
        return self.client.get_shard_iterator(
            StreamName=self.stream_name, ShardId=shard_id, **position
        )["ShardIterator"]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# S3 answers a failed If-Match / If-None-Match with 412, and a conditional write that raced
# another one on the same key with 409.
_PRECONDITION_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class S3JsonStore:
    """A JSON document in S3 (the monitoring state, the cycle lease), written with
    compare-and-swap on its ETag: ``If-Match`` the version read, ``If-None-Match: *`` when
    there was none."""

    def __init__(self, bucket: str, key: str, client: Any | None = None):
        self.bucket, self.key = bucket, key
        self.client = _client("s3", client)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def load(self) -> tuple[dict[str, Any] | None, str | None]:
        """The document and its version (ETag); (None, None) when there is none."""
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise
        return json.loads(reply["Body"].read()), reply["ETag"]

    def save(self, document: Mapping[str, Any], expected: str | None) -> str:
        """Write if the stored version is still ``expected`` (None: if there is none); returns
        the new version. Raises :class:`StateConflict` otherwise."""
        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
        try:
            reply = self.client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=json.dumps(document).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            if _error_code(exc) in _PRECONDITION_CODES:
                raise StateConflict(
                    f"{self.location} changed since it was read (expected version "
                    f"{expected or 'none'}): another writer saved it"
                ) from exc
            raise
        return reply["ETag"]

    def delete(self, expected: str) -> bool:
        """Delete if the stored version is still ``expected``; False if it is not (or gone).

        Where DeleteObject does not take ``If-Match``, the ETag is checked first (a small race
        that only matters for a lease that already expired, see ``monitoring.lease``)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=expected)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _PRECONDITION_CODES or code in ("NoSuchKey", "404"):
                return False
            if code not in ("NotImplemented", "InvalidArgument", "InvalidRequest", "501"):
                raise
            _, current = self.load()
            if current != expected:
                return False
            self.client.delete_object(Bucket=self.bucket, Key=self.key)
        return True


class LocalJsonStore:
    """A JSON document in a local file with the same compare-and-swap semantics as
    :class:`S3JsonStore`: the version is a hash of the content, checked and replaced under an
    exclusive ``fcntl`` lock on a sidecar file (released by the OS if the process dies)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def location(self) -> str:
        return str(self.path)

    @staticmethod
    def _version(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()[:32]

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _check(self, expected: str | None) -> None:
        body = self._read()
        current = None if body is None else self._version(body)
        if current != expected:
            raise StateConflict(
                f"{self.location} changed since it was read (expected version "
                f"{expected or 'none'}, found {current or 'none'}): another writer saved it"
            )

    def load(self) -> tuple[dict[str, Any] | None, str | None]:
        body = self._read()
        if body is None:
            return None, None
        return json.loads(body), self._version(body)

    def save(self, document: Mapping[str, Any], expected: str | None) -> str:
        body = json.dumps(document).encode()
        with self._locked():
            self._check(expected)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(body)
            tmp.replace(self.path)  # atomic: a reader sees the old or the new document
        return self._version(body)

    def delete(self, expected: str) -> bool:
        with self._locked():
            try:
                self._check(expected)
            except StateConflict:
                return False
            self.path.unlink()
        return True


class S3Objects:
    """Listing, reading and writing objects under one bucket (labels, reports, timeline)."""

    def __init__(self, bucket: str, client: Any | None = None):
        self.bucket = bucket
        self.client = _client("s3", client)

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix))
        return sorted(keys)

    def list_keys_after(self, prefix: str, start_after: str, delimiter: str = "") -> list[str]:
        """Keys after ``start_after`` (S3 lists in key order, so a time-sorted name scheme
        makes this the new objects only)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        if delimiter:
            kwargs["Delimiter"] = delimiter
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes, undecoded: what they mean (and whether they are valid UTF-8)
        is for the domain code to judge, so bad content cannot fail here."""
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"


class CloudWatch:
    """PutMetricData, DescribeAlarms, GetMetricStatistics and SetAlarmState."""

    def __init__(self, client: Any | None = None):
        self.client = _client("cloudwatch", client)

    def put_metric_data(self, namespace: str, metric_data: Sequence[Mapping[str, Any]]) -> int:
        for start in range(0, len(metric_data), _METRICS_PER_CALL):
            self.client.put_metric_data(
                Namespace=namespace, MetricData=list(metric_data[start : start + _METRICS_PER_CALL])
            )
        return len(metric_data)

    def describe_alarms(self, names: Iterable[str]) -> list[dict[str, Any]]:
        names = list(names)
        alarms: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNames=names, AlarmTypes=["MetricAlarm"]):
            alarms.extend(page.get("MetricAlarms", []))
        return alarms

    def period_statistics(
        self, spec: AlarmSpec, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """One value per period with data: (period start, the alarm's statistic)."""
        kwargs: dict[str, Any] = dict(
            Namespace=spec.namespace,
            MetricName=spec.metric_name,
            Dimensions=[{"Name": k, "Value": v} for k, v in spec.dimensions],
            StartTime=start,
            EndTime=end,
            Period=spec.period,
        )
        extended = spec.statistic.startswith("p")
        if extended:
            kwargs["ExtendedStatistics"] = [spec.statistic]
        else:
            kwargs["Statistics"] = [spec.statistic]
        points = self.client.get_metric_statistics(**kwargs)["Datapoints"]
        values = []
        for point in points:
            value = (
                point["ExtendedStatistics"][spec.statistic] if extended else point[spec.statistic]
            )
            values.append((point["Timestamp"], float(value)))
        return values

    def set_alarm_state(self, name: str, state: str, reason: str, reason_data: str) -> None:
        self.client.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=reason[:1023], StateReasonData=reason_data
        )


class Sns:
    """Publishes alert messages to the alert topic (found by name when no ARN is given)."""

    def __init__(self, topic_arn: str | None, topic_name: str, client: Any | None = None):
        self.client = _client("sns", client)
        self._topic_arn = topic_arn
        self.topic_name = topic_name

    @property
    def topic_arn(self) -> str:
        if not self._topic_arn:
            paginator = self.client.get_paginator("list_topics")
            for page in paginator.paginate():
                for topic in page.get("Topics", []):
                    if topic["TopicArn"].rsplit(":", 1)[-1] == self.topic_name:
                        self._topic_arn = topic["TopicArn"]
                        return self._topic_arn
            raise LookupError(f"SNS topic {self.topic_name!r} not found (set SNS_TOPIC_ARN)")
        return self._topic_arn

    def publish(self, subject: str, message: str) -> str:
        response = self.client.publish(
            TopicArn=self.topic_arn, Subject=subject[:100], Message=message
        )
        return response["MessageId"]
