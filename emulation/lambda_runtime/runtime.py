"""The local Lambda service: function + warm worker, Kinesis pollers, run loop and invoke."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from emulation.lambda_runtime import aws
from emulation.lambda_runtime.esm import COUNTERS, ShardBatchRunner, ShardStats
from emulation.lambda_runtime.model import (
    LATEST,
    AliasTarget,
    FunctionConfig,
    FunctionRef,
    InvokeOutcome,
    MappingConfig,
    parse_function_ref,
    resolve_version,
)
from emulation.lambda_runtime.sandbox import LambdaWorker

log = logging.getLogger(__name__)

DEFAULT_FUNCTION = "mushroom-scorer"
#: GetRecords maximum; one call drains up to 10,000 records, then batches are cut locally.
GET_RECORDS_LIMIT = 10000
#: Back-off between polls of a stream that returned nothing (never while records flow).
IDLE_BACKOFF_MIN_S = 0.02
IDLE_BACKOFF_MAX_S = 0.25
#: GetRecords results buffered per shard ahead of processing.
READ_AHEAD = 2
#: How often, at most, a mapping on an alias asks where the alias points (before a batch).
#: GetAlias takes 11-21 ms (median) on moto here: asked before every batch, it would add that
#: to each one; once a second, a move takes effect within a second, between two batches.
ALIAS_CHECK_S = 1.0
#: GetAlias failures in a row after which the run stops instead of keeping the old version.
MAX_ALIAS_CHECK_FAILURES = 5
#: Lambda's limit for a synchronous invocation's request (and response) payload: 6 MB.
MAX_SYNC_PAYLOAD_BYTES = 6_291_456
#: The lock file in a state directory: one poller per set of checkpoints.
POLLER_LOCK_NAME = "poller.lock"


class PayloadTooLarge(ValueError):
    """A synchronous invocation's payload is over Lambda's 6 MB limit (413 on AWS)."""


def check_payload_size(size: int) -> None:
    """Refuse a synchronous payload over MAX_SYNC_PAYLOAD_BYTES, as Lambda does."""
    if size > MAX_SYNC_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"RequestEntityTooLarge: the payload is {size:,} bytes; Lambda refuses a synchronous "
            f"invocation over {MAX_SYNC_PAYLOAD_BYTES:,} bytes (6 MB)"
        )


class PollerBusy(RuntimeError):
    """Another process already polls with these checkpoints (the background service)."""


class PollerLock:
    """An exclusive lock on a state directory's checkpoints, held while polling.

    Two pollers on the same checkpoints would both deliver every record: the second one is
    refused with a message naming the holder. The OS drops the lock when its process dies.
    """

    def __init__(self, state_dir: Path, owner: str = "") -> None:
        self.path = Path(state_dir) / POLLER_LOCK_NAME
        self.owner = owner or f"pid {os.getpid()}"
        self._file: IO[str] | None = None

    def acquire(self) -> "PollerLock":
        """Take the lock or raise PollerBusy."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise PollerBusy(
                f"{holder} already polls the event source mappings with the checkpoints in "
                f"{self.path.parent}; a second poller would deliver every record twice. The "
                "background service does it for `make up` (make status; make down stops it)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(self.owner)
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None

    def __enter__(self) -> "PollerLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class LocalFunction:
    """A deployed function made runnable: the version a name, version or alias resolves to,
    its verified code and a warm worker (one execution environment at a time)."""

    def __init__(
        self,
        function_name: str = DEFAULT_FUNCTION,
        *,
        qualifier: str | None = None,
        state_dir: Path | None = None,
        log_stream: IO[Any] | int | None = None,
        python: str | None = None,
        lambda_client: Any = None,
        s3_client: Any = None,
        alias_check_s: float = ALIAS_CHECK_S,
        progress: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``function_name``: a name, ``name:qualifier`` or an ARN, as Lambda's Invoke takes.
        self.ref = parse_function_ref(function_name, qualifier)
        self.function_name = self.ref.name
        self.state_dir = Path(state_dir) if state_dir else aws.default_state_dir()
        self.log_stream = log_stream
        self.python = python
        self.lambda_client = lambda_client or boto3.client("lambda")
        self.s3_client = s3_client
        self.alias_check_s = alias_check_s
        self._say = progress or (lambda message: None)
        self._clock = clock
        self._sts, self._iam = boto3.client("sts"), boto3.client("iam")
        self.config: FunctionConfig = self._resolve()
        self._last_alias_check = clock()
        self._alias_check_failures = 0
        self.worker = self._make_worker(self.config)
        self._retired_cold_starts = 0
        self.invocations_by_version: dict[str, int] = {}

    @property
    def invoked_arn(self) -> str:
        """The ARN callers invoke (an alias ARN for an alias), not the version's."""
        return self.ref.arn(self.config.arn)

    def _alias_target(self, function_name: str, alias: str) -> AliasTarget:
        return aws.get_alias_target(function_name, alias, self.lambda_client)

    def _resolve(self) -> FunctionConfig:
        """Configuration of the version the reference runs now."""
        version = resolve_version(self.ref, self._alias_target)
        return aws.get_function(self.ref.name, self.lambda_client, version)

    def _make_worker(self, config: FunctionConfig) -> LambdaWorker:
        code_dir = aws.prepare_code(config, self.state_dir / "code", self.s3_client)
        handler = aws.image_handler(config) if config.package_type == "Image" else config.handler
        return LambdaWorker(
            config,
            code_dir,
            # A new role session (and the role's current policies) for each environment.
            identity=lambda: aws.assume_execution_role(config, self._sts, self._iam),
            handler=handler,
            python=self.python,
            log=self.log_stream,
            # An image cannot run here: its code runs from the source tree with the host's
            # packages, as before (emulators deploy the zip).
            isolated=config.package_type == "Zip",
            state_dir=self.state_dir,
            invoked_function_arn=self.ref.arn(config.arn),
        )

    @property
    def max_memory_used_mb(self) -> float:
        """Peak RSS of the current environment's worker (Lambda's "Max Memory Used")."""
        return self.worker.max_memory_used_mb

    @property
    def cold_starts(self) -> int:
        """Cold starts so far (worker processes started), across redeployments."""
        return self._retired_cold_starts + self.worker.cold_starts

    def refresh(self) -> bool:
        """Re-resolve the reference; another version (alias moved) or a new deployment of
        $LATEST replaces the environment (next invoke is a cold start), as on Lambda.
        Returns True when something changed.

        A published version is immutable, so an alias still on the same version costs one
        GetAlias, and a reference to a version nothing at all.
        """
        if self.ref.kind == "version":
            return False
        if self.ref.kind == "alias":
            self._last_alias_check = self._clock()
            version = resolve_version(self.ref, self._alias_target)
            if version == self.config.version and version != LATEST:
                return False
            config = aws.get_function(self.ref.name, self.lambda_client, version)
        else:
            config = aws.get_function(self.ref.name, self.lambda_client)
        if config == self.config:
            return False
        worker = self._make_worker(config)  # verify the new code before dropping the old one
        previous = self.config
        self.worker.close()
        self._retired_cold_starts += self.worker.cold_starts
        self.config, self.worker = config, worker
        if previous.version != config.version:
            message = (
                f"{self.invoked_arn} now runs version {config.version} (was "
                f"{previous.version}); new execution environment"
            )
        else:
            message = (
                f"{config.name} was redeployed (CodeSha256 {config.code_sha256}); "
                "new execution environment"
            )
        log.info(message)
        self._say(message)
        return True

    def at_batch_boundary(self) -> None:
        """Before a new batch: follow an alias move, asked at most every ``alias_check_s``.

        A failed GetAlias keeps the current version and is retried before the next batch;
        after MAX_ALIAS_CHECK_FAILURES in a row the error is raised (the run stops, and what
        was not acknowledged is read again by the next run).
        """
        if self.ref.kind != "alias":
            return
        if self._clock() - self._last_alias_check < self.alias_check_s:
            return
        try:
            self.refresh()
        except (ClientError, BotoCoreError) as exc:
            self._alias_check_failures += 1
            if self._alias_check_failures >= MAX_ALIAS_CHECK_FAILURES:
                raise
            log.warning(
                "cannot resolve %s (%s); keeping version %s",
                self.invoked_arn,
                exc,
                self.config.version,
            )
            return
        self._alias_check_failures = 0

    def invoke(self, event: Any) -> InvokeOutcome:
        """Synchronous invocation in the warm worker."""
        outcome = self.worker.invoke(event)
        version = outcome.executed_version
        self.invocations_by_version[version] = self.invocations_by_version.get(version, 0) + 1
        return outcome

    def close(self) -> None:
        """Stop the worker process."""
        self.worker.close()

    def __enter__(self) -> "LocalFunction":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CheckpointStore:
    """Per-mapping shard checkpoints, in memory and optionally in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.shards: dict[str, str] = {}
        self._dirty = False
        if path is not None and path.exists():
            self.shards = dict(json.loads(path.read_text()).get("shards", {}))

    def get(self, shard_id: str) -> str | None:
        """Last processed sequence number of a shard."""
        return self.shards.get(shard_id)

    def set(self, shard_id: str, sequence_number: str) -> None:
        """Record progress (written out by flush)."""
        self.shards[shard_id] = sequence_number
        self._dirty = True

    def flush(self) -> None:
        """Persist if there is a file and something changed (atomic replace)."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"shards": self.shards}, indent=1))
        os.replace(tmp, self.path)
        self._dirty = False


class ShardReader(threading.Thread):
    """Reads one shard ahead of processing (bounded by the shared queue), so GetRecords on the
    emulator overlaps with invocations; backs off only while the shard returns nothing."""

    MAX_CONSECUTIVE_ERRORS = 5

    def __init__(
        self,
        poller: "MappingPoller",
        shard_id: str,
        iterator: str,
        out: "queue.Queue[tuple[MappingPoller, str, Any]]",
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"reader-{shard_id}", daemon=True)
        self.poller, self.shard_id, self.iterator = poller, shard_id, iterator
        self.out, self.stop = out, stop
        # Idle detection: True once the latest completed read returned nothing.
        self.dry = False
        self.last_data = 0.0
        # One client per thread: boto3 clients are shared safely, sessions are not.
        self.shards = aws.KinesisShards(poller.mapping.event_source_arn)

    def run(self) -> None:
        backoff, errors = IDLE_BACKOFF_MIN_S, 0
        while not self.stop.is_set():
            try:
                records, next_iterator = self.shards.read(self.iterator, GET_RECORDS_LIMIT)
                errors = 0
            except Exception as exc:  # surfaced to the main loop after a few attempts
                errors += 1
                if errors >= self.MAX_CONSECUTIVE_ERRORS:
                    self._put(exc)
                    return
                log.warning("GetRecords on %s failed (%s); retrying", self.shard_id, exc)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self.dry = not records
            if records:
                self.last_data = time.monotonic()
                self._put(records)
                backoff = IDLE_BACKOFF_MIN_S
            if next_iterator is None:  # closed shard fully read
                self._put(None)
                self.dry = True
                return
            self.iterator = next_iterator
            if not records:
                self.stop.wait(backoff)
                backoff = min(backoff * 2, IDLE_BACKOFF_MAX_S)

    def _put(self, payload: Any) -> None:
        while not self.stop.is_set():
            try:
                self.out.put((self.poller, self.shard_id, payload), timeout=0.1)
                return
            except queue.Full:
                continue


class MappingPoller:
    """One mapping: an iterator and a ShardBatchRunner per shard of its stream."""

    def __init__(
        self,
        mapping: MappingConfig,
        function: LocalFunction,
        sink: aws.DestinationSink,
        checkpoints: CheckpointStore,
        latest_from: str = "mapping",
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.mapping = mapping
        self.should_stop = should_stop
        self.function = function
        self.sink = sink
        self.checkpoints = checkpoints
        self.shards = aws.KinesisShards(mapping.event_source_arn)
        self.latest_from = latest_from
        self.iterators: dict[str, str] = {}
        self.runners: dict[str, ShardBatchRunner] = {}

    def start(self) -> None:
        """Open an iterator per shard: after its checkpoint, else at the starting position."""
        for shard_id in self.shards.shard_ids():
            self.iterators[shard_id] = self._first_iterator(shard_id)
            self.runners[shard_id] = ShardBatchRunner(
                self.mapping,
                self.function,
                self.sink,
                shard_id=shard_id,
                region=self.function.config.region,
                invoke_identity_arn=self.function.config.role,
                on_checkpoint=self.checkpoints.set,
                should_stop=self.should_stop,
                on_batch_start=self.function.at_batch_boundary,
            )

    def _first_iterator(self, shard_id: str) -> str:
        checkpoint = self.checkpoints.get(shard_id)
        if checkpoint is not None:
            return self.shards.iterator(shard_id, after_sequence=checkpoint)
        position = self.mapping.starting_position
        if position == "AT_TIMESTAMP":
            return self.shards.iterator(
                shard_id, position=position, timestamp=self.mapping.starting_position_timestamp
            )
        created = self.mapping.last_modified
        if position == "LATEST" and self.latest_from == "mapping" and created is not None:
            # On AWS, LATEST means "records put after the mapping was enabled", not "after this
            # local process started": start at the mapping's LastModified when it is not ahead.
            if created <= time.time():
                return self.shards.iterator(shard_id, position="AT_TIMESTAMP", timestamp=created)
        return self.shards.iterator(shard_id, position=position)

    def readers(
        self, out: "queue.Queue[tuple[MappingPoller, str, Any]]", stop: threading.Event
    ) -> list[ShardReader]:
        """A reader thread per shard (not started)."""
        return [ShardReader(self, sid, it, out, stop) for sid, it in self.iterators.items()]

    def process(self, shard_id: str, records: list[Any]) -> None:
        """Run fetched records through the shard's runner and persist the checkpoint."""
        self.runners[shard_id].process(records)
        self.checkpoints.flush()

    def stats(self) -> ShardStats:
        """Counters summed over shards."""
        return ShardStats.total(runner.stats for runner in self.runners.values())


@dataclass
class RunStats:
    """What a run did (JSON-friendly)."""

    function_name: str
    mappings: list[str] = field(default_factory=list)
    shards: int = 0
    records_read: int = 0
    records_succeeded: int = 0
    records_discarded: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    retries: int = 0
    bisections: int = 0
    on_failure_records: int = 0
    cold_starts: int = 0
    invocations_by_version: dict[str, int] = field(default_factory=dict)  # ExecutedVersion
    max_memory_used_mb: float = 0.0  # peak RSS of the worker (MemorySize applies to it)
    elapsed_s: float = 0.0
    busy_s: float = 0.0  # time spent invoking (reads overlap with it)
    active_s: float = 0.0  # from the start of polling to the last record processed
    records_per_s: float = 0.0  # records_read / active_s
    stopped_because: str = ""
    checkpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    discarded: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for printing as JSON."""
        return asdict(self)


def run(
    function_name: str = DEFAULT_FUNCTION,
    *,
    until_idle: float | None = None,
    max_seconds: float | None = None,
    state_dir: Path | None = None,
    persist_checkpoints: bool = True,
    log_stream: IO[Any] | int | None = None,
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    latest_from: str = "mapping",
    refresh_s: float = 5.0,
    alias_check_s: float = ALIAS_CHECK_S,
    exclusive: bool = True,
    on_stats: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """Poll the function's enabled Kinesis mappings and invoke it, like the Lambda service.

    Each mapping invokes what its FunctionArn names: $LATEST (unqualified), a version, or an
    alias, resolved to the version it points to and followed when it moves (checked before a
    batch, at most every ``alias_check_s``; $LATEST is re-read every ``refresh_s``).

    Stops after ``until_idle`` seconds without records, after ``max_seconds``, or when ``stop``
    is set (whichever first; none of them: runs until interrupted).

    ``exclusive`` takes the state directory's PollerLock for the run (PollerBusy when the
    background service or another run holds it); the service, which holds it itself, passes
    False. ``on_stats`` receives the counters as they change (at most about once a second).
    """
    state_dir = Path(state_dir) if state_dir else aws.default_state_dir()
    started = time.monotonic()
    stop = stop or threading.Event()
    say = progress or (lambda message: None)
    stats = RunStats(function_name=function_name)

    def should_stop() -> bool:  # asked before every invocation, retries included
        out_of_time = max_seconds is not None and time.monotonic() - started >= max_seconds
        return stop.is_set() or out_of_time

    ref = parse_function_ref(function_name)
    lambda_client = boto3.client("lambda")
    base_arn = aws.get_function(ref.name, lambda_client).arn
    mappings = aws.list_kinesis_mappings(base_arn, lambda_client)
    if ref.qualifier is not None:  # only the mappings of that version or alias
        mappings = [m for m in mappings if parse_function_ref(m.function_arn) == ref]
    with ExitStack() as resources:
        if exclusive:
            resources.enter_context(PollerLock(state_dir))
        # One function per qualifier the mappings name: each resolves its own version.
        functions: dict[FunctionRef, LocalFunction] = {}
        sink = aws.DestinationSink()
        pollers = []
        for mapping in mappings:
            if not mapping.is_polling:
                say(f"mapping {mapping.uuid} is {mapping.state}: not polled")
                continue
            target = parse_function_ref(mapping.function_arn)
            function = functions.get(target)
            if function is None:
                function = resources.enter_context(
                    LocalFunction(
                        target.name,
                        qualifier=target.qualifier,
                        state_dir=state_dir,
                        log_stream=log_stream,
                        lambda_client=lambda_client,
                        alias_check_s=alias_check_s,
                        progress=say,
                    )
                )
                functions[target] = function
            path = state_dir / "checkpoints" / f"{mapping.uuid}.json"
            store = CheckpointStore(path if persist_checkpoints else None)
            poller = MappingPoller(mapping, function, sink, store, latest_from, should_stop)
            poller.start()
            pollers.append(poller)
            stats.mappings.append(mapping.uuid)
            stats.shards += len(poller.iterators)
            say(
                f"polling {mapping.event_source_arn} ({len(poller.iterators)} shard(s), "
                f"BatchSize {mapping.batch_size}, {mapping.starting_position}) -> "
                f"{function.invoked_arn} (version {function.config.version})"
            )
        if not pollers:
            say(f"no enabled Kinesis event source mapping for {function_name}")
        fetched: queue.Queue[tuple[MappingPoller, str, Any]] = queue.Queue(
            maxsize=READ_AHEAD * max(1, stats.shards)
        )
        readers_stop = threading.Event()
        readers = [r for poller in pollers for r in poller.readers(fetched, readers_stop)]
        for reader in readers:
            reader.start()
        try:
            stats.stopped_because = _loop(
                stats,
                pollers,
                readers,
                list(functions.values()),
                fetched,
                stop,
                started,
                until_idle,
                max_seconds,
                refresh_s,
                say,
                on_stats or (lambda stats: None),
            )
        finally:
            readers_stop.set()
            for reader in readers:
                reader.join(timeout=5)
            for function in functions.values():
                stats.cold_starts += function.cold_starts
                stats.max_memory_used_mb = max(
                    stats.max_memory_used_mb, function.max_memory_used_mb
                )
                for version, count in function.invocations_by_version.items():
                    stats.invocations_by_version[version] = (
                        stats.invocations_by_version.get(version, 0) + count
                    )
            _summarise(stats, pollers)
    stats.elapsed_s = time.monotonic() - started
    stats.records_per_s = stats.records_read / stats.active_s if stats.active_s else 0.0
    say(_progress_line(stats) + f" [{stats.stopped_because}]")
    return stats


def _loop(
    stats: RunStats,
    pollers: list[MappingPoller],
    readers: list[ShardReader],
    functions: list[LocalFunction],
    fetched: "queue.Queue[tuple[MappingPoller, str, Any]]",
    stop: threading.Event,
    started: float,
    until_idle: float | None,
    max_seconds: float | None,
    refresh_s: float,
    say: Callable[[str], None],
    on_stats: Callable[[RunStats], None],
) -> str:
    """Process fetched records until a stop condition; returns which one."""
    if not pollers:
        return "no-mappings"
    readers_started = last_records = last_refresh = last_report = time.monotonic()
    open_shards = stats.shards
    unreported = False  # records processed since the counters were last summarised
    while True:
        now = time.monotonic()
        if stop.is_set():
            return "stopped"
        if max_seconds is not None and now - started >= max_seconds:
            return "max-seconds"
        if until_idle is not None and _idle(readers, fetched, last_records, now, until_idle):
            return "idle"
        if open_shards == 0:
            return "shards-closed"
        if now - last_refresh >= refresh_s:
            for function in functions:
                function.refresh()  # reports a change itself
            last_refresh = now
        wait = 0.25
        if until_idle is not None:
            wait = min(wait, max(0.001, until_idle - (now - last_records)))
        try:
            poller, shard_id, payload = fetched.get(timeout=wait)
        except queue.Empty:
            if unreported:  # the stream went quiet: report the last batches' counters now
                _summarise(stats, pollers)
                on_stats(stats)
                unreported = False
            continue
        if isinstance(payload, Exception):
            raise payload
        if payload is None:
            open_shards -= 1
            continue
        busy_from = time.monotonic()
        poller.process(shard_id, payload)
        last_records = time.monotonic()
        stats.busy_s += last_records - busy_from
        stats.active_s = last_records - readers_started
        unreported = True
        if last_records - last_report >= 1.0:
            _summarise(stats, pollers)
            say(_progress_line(stats))
            on_stats(stats)
            last_report = last_records
            unreported = False


def _idle(
    readers: list[ShardReader],
    fetched: "queue.Queue[Any]",
    last_records: float,
    now: float,
    until_idle: float,
) -> bool:
    """Idle: nothing buffered, every shard's latest read came back empty, and no record was
    seen for ``until_idle`` seconds (a slow first GetRecords does not count as idle)."""
    if not fetched.empty() or not all(reader.dry for reader in readers):
        return False
    last_seen = max([last_records] + [reader.last_data for reader in readers])
    return now - last_seen >= until_idle


def _summarise(stats: RunStats, pollers: list[MappingPoller]) -> None:
    total = ShardStats.total(poller.stats() for poller in pollers)
    stats.checkpoints = {poller.mapping.uuid: dict(poller.checkpoints.shards) for poller in pollers}
    for name in COUNTERS:
        setattr(stats, name, getattr(total, name))
    stats.discarded = total.discarded


def _progress_line(stats: RunStats) -> str:
    return (
        f"{stats.records_read} records read, {stats.records_succeeded} succeeded, "
        f"{stats.records_discarded} discarded, {stats.invocations} invocations "
        f"({stats.function_errors} function errors, {stats.retries} retries, "
        f"{stats.bisections} bisections)"
    )


def run_until_idle(
    function_name: str = DEFAULT_FUNCTION,
    idle_seconds: float = 2.0,
    timeout: float = 300.0,
    **kwargs: Any,
) -> RunStats:
    """Run the pollers in this process (the handler still runs in a worker process) until no
    record arrived for ``idle_seconds``, or ``timeout`` seconds passed. For demo and tests."""
    return run(function_name, until_idle=idle_seconds, max_seconds=timeout, **kwargs)


def invoke(
    function_name: str,
    event: Any,
    *,
    state_dir: Path | None = None,
    log_stream: IO[Any] | int | None = None,
) -> dict[str, Any]:
    """What `aws lambda invoke` returns (StatusCode, FunctionError, ExecutedVersion, Payload).

    ``function_name`` may carry a qualifier (``name:live``, ``name:3``, or a qualified ARN).
    An event over 6 MB (as JSON) raises PayloadTooLarge before anything runs, as on Lambda.
    """
    check_payload_size(len(json.dumps(event, separators=(",", ":")).encode()))
    with LocalFunction(function_name, state_dir=state_dir, log_stream=log_stream) as function:
        return function.invoke(event).to_invoke_response()
