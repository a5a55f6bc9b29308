"""Fixes for moto server's Kinesis and Lambda when this runtime plays the Lambda service.

Written for, and checked against, exactly moto ``TARGET_MOTO_VERSION``: ``apply()`` refuses
another version (``MotoVersionError``), since each patch replaces a moto internal whose code
and signature can change in any release. Re-read the patched functions, then bump the pin.

1. For every record put on a stream that has an event source mapping, moto invokes the function
   itself, one record per event, through Docker: without a Docker engine each attempt fails
   slowly (measured: 10,000 records put in 15-19 s instead of 0.9 s); with one, every record
   would be processed twice and with the wrong batching. The local runtime polls instead.
2. Shard.put_record copies all sequence numbers to find the last one (quadratic in the shard
   length), and GetRecords scans the shard from its first record on every call.
3. CreateEventSourceMapping and UpdateEventSourceMapping store as FunctionArn the function or
   version the given name resolved to at that moment (an alias ARN becomes ``...:f:1``, and
   later alias moves are not followed). AWS keeps the ARN as given (unqualified, version or
   alias), and the Lambda service resolves an alias on each invocation.
4. Invoke runs the function in Docker (without Docker: a 200 with ``FunctionError: Handled``
   and a docker error as the payload). Here it runs the published code in the local runtime
   (``invoke_api``: qualifier, ExecutedVersion, FunctionError, LogType=Tail, the 6 MB limit).

``apply()`` is idempotent; run it in the moto server process before serving, e.g.
``python -m emulation.lambda_runtime.moto_server -p 5000`` (same arguments as ``moto_server``).
"""

from __future__ import annotations

import re
from typing import Any

#: The moto release these patches were written for and tested against.
TARGET_MOTO_VERSION = "5.2.5"

_ORIGINALS: list[tuple[Any, str, Any]] = []


class MotoVersionError(RuntimeError):
    """The installed moto is not the version the patches were written for."""


def check_moto_version(installed: str | None = None) -> None:
    """Refuse any moto but TARGET_MOTO_VERSION (the patches replace moto internals)."""
    if installed is None:
        import moto

        installed = moto.__version__
    if installed != TARGET_MOTO_VERSION:
        raise MotoVersionError(
            f"moto {installed} is installed, but emulation/lambda_runtime/moto_patches.py was "
            f"written for moto {TARGET_MOTO_VERSION}: install moto=={TARGET_MOTO_VERSION} "
            "(pipenv sync), or check each patched moto function against the new release "
            "and update TARGET_MOTO_VERSION"
        )


def restore() -> None:
    """Undo apply() (for tests that run moto in-process)."""
    from emulation.lambda_runtime import invoke_api

    invoke_api.reset()
    while _ORIGINALS:
        owner, name, original = _ORIGINALS.pop()
        setattr(owner, name, original)


def apply() -> None:
    """Patch moto's Lambda and Kinesis models in this process (after the version check)."""
    check_moto_version()
    if _ORIGINALS:
        return
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda.responses import LambdaResponse
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

    original_create_esm = LambdaBackend.create_event_source_mapping
    original_update_esm = LambdaBackend.update_event_source_mapping

    def create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        given = spec.get("FunctionName") or ""
        esm = original_create_esm(self, spec)  # validates the name, qualifier included
        esm.function_arn = _function_arn_as_given(self, given, esm.function_arn)
        return esm

    def update_event_source_mapping(self: LambdaBackend, uuid: str, spec: dict[str, Any]) -> Any:
        esm = original_update_esm(self, uuid, spec)
        if esm is not None and spec.get("FunctionName"):
            esm.function_arn = _function_arn_as_given(self, spec["FunctionName"], esm.function_arn)
        return esm

    def invoke(self: LambdaResponse) -> tuple[int, dict[str, str], bytes]:
        from urllib.parse import unquote

        from emulation.lambda_runtime import invoke_api
        from emulation.lambda_runtime.model import QualifierError, parse_function_ref

        function_name = unquote(self.path.rsplit("/", 2)[-2])
        qualifier = self._get_param("qualifier") or self._get_param("Qualifier")
        try:
            ref = parse_function_ref(function_name, qualifier)
        except QualifierError as exc:
            status, headers, body = invoke_api.error(
                400, "InvalidParameterValueException", str(exc)
            )
        else:
            self.backend.get_function(ref.name, ref.qualifier)  # 404 ResourceNotFound as on AWS
            raw = self.raw_body or b""
            raw = raw if isinstance(raw, bytes) else str(raw).encode()
            status, headers, body = invoke_api.handle(function_name, qualifier, raw, self.headers)
        headers["status"] = str(status)  # moto takes the status code from this header
        return status, headers, body

    for owner, name, replacement in (
        (LambdaResponse, "invoke", invoke),
        (LambdaBackend, "send_kinesis_message", send_kinesis_message),
        (LambdaBackend, "create_event_source_mapping", create_event_source_mapping),
        (LambdaBackend, "update_event_source_mapping", update_event_source_mapping),
        (Shard, "get_max_sequence_number", get_max_sequence_number),
        (Shard, "put_record", put_record),
        (Shard, "get_records", get_records),
    ):
        _ORIGINALS.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)


def _function_arn_as_given(backend: Any, name_or_arn: str, resolved_arn: str) -> str:
    """The function ARN with the qualifier the caller gave (none, a version or an alias).

    ``resolved_arn`` is what moto resolved the name to (``...:function:f`` or ``...:f:1``);
    names may be ``f``, ``f:live``, or full ARNs, qualified or not.
    """
    base = re.sub(r"(:function:[^:]+):[^:]+$", r"\1", resolved_arn)
    if name_or_arn.startswith("arn:"):
        qualifier = backend._lambdas.split_function_arn(name_or_arn)[2]
    else:
        qualifier = name_or_arn.split(":", 1)[1] if ":" in name_or_arn else None
    return f"{base}:{qualifier}" if qualifier else base
