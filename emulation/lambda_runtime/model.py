"""Plain data types of the local Lambda runtime (no boto3, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

#: ESM states in which the Lambda service keeps polling (moto only reports Enabled/Disabled).
POLLING_STATES = frozenset({"Enabled", "Enabling", "Creating", "Updating"})
#: The unpublished version (what an unqualified name or ARN runs).
LATEST = "$LATEST"
_VERSION = re.compile(r"[0-9]+")
_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,128}")  # Lambda's alias names: not only digits


class QualifierError(ValueError):
    """A function name or ARN with a qualifier Lambda would not accept."""


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """What a mapping or an invocation names: a function and an optional qualifier.

    ``qualifier`` is None for $LATEST (unqualified, or ``:$LATEST``), a version number, or an
    alias name.
    """

    name: str
    qualifier: str | None = None

    @property
    def kind(self) -> str:
        """'latest', 'version' or 'alias'."""
        if self.qualifier is None:
            return "latest"
        return "version" if _VERSION.fullmatch(self.qualifier) else "alias"

    def arn(self, function_arn: str) -> str:
        """This reference as an ARN, given any ARN of the function (qualified or not)."""
        base = unqualified_arn(function_arn)
        return f"{base}:{self.qualifier}" if self.qualifier else base


def parse_function_ref(name_or_arn: str, qualifier: str | None = None) -> FunctionRef:
    """``f``, ``f:live``, ``arn:aws:lambda:<region>:<account>:function:f[:q]`` -> FunctionRef.

    A qualifier in the name wins over ``qualifier`` (as Lambda's Invoke: both must agree there,
    here the name's is used); ``$LATEST`` means unqualified.
    """
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        if len(parts) not in (7, 8) or parts[2] != "lambda" or parts[5] != "function":
            raise QualifierError(f"not a Lambda function ARN: {name_or_arn!r}")
        name, in_name = parts[6], parts[7] if len(parts) == 8 else None
    else:
        name, _, in_name = name_or_arn.partition(":")
        in_name = in_name or None
    qualifier = in_name or qualifier
    if not name:
        raise QualifierError(f"no function name in {name_or_arn!r}")
    if qualifier is None or qualifier == LATEST:
        return FunctionRef(name)
    if not (_VERSION.fullmatch(qualifier) or _ALIAS.fullmatch(qualifier)):
        raise QualifierError(f"invalid qualifier {qualifier!r} in {name_or_arn!r}")
    return FunctionRef(name, qualifier)


def unqualified_arn(function_arn: str) -> str:
    """arn:...:function:f[:qualifier] -> arn:...:function:f."""
    parts = function_arn.split(":")
    return ":".join(parts[:7])


@dataclass(frozen=True, slots=True)
class AliasTarget:
    """What GetAlias says an alias points to."""

    function_version: str
    additional_weights: dict[str, float] = field(default_factory=dict)  # RoutingConfig


class WeightedAliasUnsupported(ValueError):
    """An alias splits traffic between versions: this runtime only runs one version per alias."""


def resolve_version(ref: FunctionRef, get_alias: Callable[[str, str], AliasTarget]) -> str:
    """The version an invocation of ``ref`` runs now: $LATEST, the version, or the version the
    alias points to (asked through ``get_alias(function_name, alias)``)."""
    if ref.kind == "latest":
        return LATEST
    if ref.kind == "version":
        return str(ref.qualifier)
    target = get_alias(ref.name, str(ref.qualifier))
    if target.additional_weights:
        # Fail closed: serving only the primary version would silently skip a canary.
        raise WeightedAliasUnsupported(
            f"alias {ref.qualifier} of {ref.name} routes {target.additional_weights} of the "
            f"traffic to other versions than {target.function_version}; the local runtime "
            "runs one version per alias (remove the RoutingConfig)"
        )
    return target.function_version


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One Kinesis record as read by GetRecords, data kept base64-encoded as Lambda sends it."""

    sequence_number: str
    partition_key: str
    data_b64: str
    arrival: float  # ApproximateArrivalTimestamp, epoch seconds


@dataclass(frozen=True, slots=True)
class InvokeOutcome:
    """What a synchronous Invoke returns (status, function error and the decoded payload)."""

    request_id: str
    payload: Any
    function_error: str | None = None  # "Unhandled" like Lambda, None on success
    status_code: int = 200
    executed_version: str = "$LATEST"
    duration_ms: float = 0.0
    cold_start: bool = False

    def to_invoke_response(self) -> dict[str, Any]:
        """The shape `aws lambda invoke` reports, with the payload inlined."""
        response: dict[str, Any] = {
            "StatusCode": self.status_code,
            "ExecutedVersion": self.executed_version,
        }
        if self.function_error:
            response["FunctionError"] = self.function_error
        response["Payload"] = self.payload
        return response


@dataclass(frozen=True, slots=True)
class ExecutionIdentity:
    """Who the function runs as: its execution role's session and that role's policies."""

    credentials: dict[str, str]  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
    principal_arn: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>
    statements: tuple[dict[str, Any], ...]  # identity-policy statements (inline + attached)


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """The parts of GetFunction the runtime needs."""

    name: str
    arn: str
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    package_type: str
    code_sha256: str
    role: str
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    version: str = LATEST
    image_command: tuple[str, ...] = ()
    code_size: int = 0

    @property
    def region(self) -> str:
        """Region taken from the function ARN (arn:aws:lambda:<region>:...)."""
        return self.arn.split(":")[3]


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """A Kinesis event source mapping, with the Lambda service's defaults filled in."""

    uuid: str
    function_arn: str
    event_source_arn: str
    state: str = "Enabled"
    batch_size: int = 100
    starting_position: str = "LATEST"
    starting_position_timestamp: float | None = None
    report_batch_item_failures: bool = False
    bisect_on_error: bool = False
    max_retry_attempts: int = -1  # -1: retry until the record expires
    max_record_age_s: int = -1  # -1: no age limit
    on_failure_destination: str | None = None
    last_modified: float | None = None

    @property
    def is_polling(self) -> bool:
        """True when the Lambda service would poll this mapping."""
        return self.state in POLLING_STATES

    @property
    def is_kinesis(self) -> bool:
        """True for Kinesis stream sources (the only kind this runtime polls)."""
        return self.event_source_arn.split(":")[2] == "kinesis"

    @classmethod
    def from_api(cls, esm: dict[str, Any]) -> "MappingConfig":
        """Build from a ListEventSourceMappings entry (moto returns None for unset fields)."""

        def opt(key: str, default: Any) -> Any:
            value = esm.get(key)
            return default if value is None else value

        destination = ((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        return cls(
            uuid=esm["UUID"],
            function_arn=esm["FunctionArn"],
            event_source_arn=esm["EventSourceArn"],
            state=opt("State", "Enabled"),
            batch_size=int(opt("BatchSize", 100)),
            starting_position=opt("StartingPosition", "LATEST"),
            starting_position_timestamp=_epoch(esm.get("StartingPositionTimestamp")),
            report_batch_item_failures="ReportBatchItemFailures"
            in (esm.get("FunctionResponseTypes") or []),
            bisect_on_error=bool(opt("BisectBatchOnFunctionError", False)),
            max_retry_attempts=int(opt("MaximumRetryAttempts", -1)),
            max_record_age_s=int(opt("MaximumRecordAgeInSeconds", -1)),
            on_failure_destination=destination or None,
            last_modified=_epoch(esm.get("LastModified")),
        )


def _epoch(value: Any) -> float | None:
    """Datetime (boto3) or number to epoch seconds."""
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)
