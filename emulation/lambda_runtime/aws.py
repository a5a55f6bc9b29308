"""Small boto3 adapters: function and mapping configuration, deployed code, shards, destinations.

Endpoints come from the environment (AWS_ENDPOINT_URL), which boto3 reads itself.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session

from config.settings import REPO_ROOT
from emulation.lambda_runtime.model import (
    LATEST,
    AliasTarget,
    ExecutionIdentity,
    FunctionConfig,
    MappingConfig,
    StreamRecord,
    unqualified_arn,
)
from emulation.lambda_runtime.sandbox import default_state_dir

__all__ = ["default_state_dir"]  # re-exported: the runtime's state directory

log = logging.getLogger(__name__)

#: Tag Terraform puts on the function: where the deployed zip lies (s3://bucket/key).
PACKAGE_TAG = "package_s3_uri"
#: Handler of the container image when neither ImageConfig nor the Dockerfile name one.
DEFAULT_IMAGE_HANDLER = "lambda_function.handler.lambda_handler"


class CodeIntegrityError(RuntimeError):
    """The code found is not the code the Lambda API says is deployed."""


def get_function(name: str, client: Any = None, version: str = LATEST) -> FunctionConfig:
    """GetFunction of $LATEST or a published version (configuration and the function's tags)."""
    client = client or boto3.client("lambda")
    kwargs = {} if version == LATEST else {"Qualifier": version}
    response = client.get_function(FunctionName=name, **kwargs)
    cfg = response["Configuration"]
    tags = response.get("Tags")
    if tags is None:  # tags belong to the function, not to one of its versions
        tags = client.list_tags(Resource=unqualified_arn(cfg["FunctionArn"])).get("Tags", {})
    image_config = (cfg.get("ImageConfigResponse") or {}).get("ImageConfig") or {}
    return FunctionConfig(
        name=cfg["FunctionName"],
        arn=cfg["FunctionArn"],
        handler=cfg.get("Handler") or "",
        runtime=cfg.get("Runtime") or "python3.12",
        timeout_s=int(cfg.get("Timeout") or 3),
        memory_mb=int(cfg.get("MemorySize") or 128),
        package_type=cfg.get("PackageType") or "Zip",
        code_sha256=cfg.get("CodeSha256") or "",
        role=cfg.get("Role") or "",
        environment=dict((cfg.get("Environment") or {}).get("Variables") or {}),
        tags=dict(tags),
        version=cfg.get("Version") or LATEST,
        image_command=tuple(image_config.get("Command") or ()),
        code_size=int(cfg.get("CodeSize") or 0),
    )


def get_alias_target(function_name: str, alias: str, client: Any = None) -> AliasTarget:
    """GetAlias: the version the alias points to now, and any weighted routing."""
    client = client or boto3.client("lambda")
    response = client.get_alias(FunctionName=function_name, Name=alias)
    weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return AliasTarget(
        function_version=str(response["FunctionVersion"]),
        additional_weights={str(k): float(v) for k, v in weights.items()},
    )


def list_kinesis_mappings(function_arn: str, client: Any = None) -> list[MappingConfig]:
    """The function's Kinesis event source mappings.

    Lists without the FunctionName filter (moto returns nothing with it) and matches the ARN,
    also when the mapping points at a qualified ARN ($LATEST, alias, version).
    """
    client = client or boto3.client("lambda")
    mappings = []
    for page in client.get_paginator("list_event_source_mappings").paginate():
        for esm in page.get("EventSourceMappings", []):
            arn = esm.get("FunctionArn", "")
            if arn == function_arn or arn.startswith(function_arn + ":"):
                mapping = MappingConfig.from_api(esm)
                if mapping.is_kinesis:
                    mappings.append(mapping)
    return mappings


class ExecutionRoleError(RuntimeError):
    """The function's execution role cannot be assumed or read: the function does not run."""


def role_statements(role_arn: str, iam: Any = None) -> tuple[dict[str, Any], ...]:
    """Statements of the role's inline and attached (default version) identity policies."""
    iam = iam or boto3.client("iam")
    role_name = role_arn.rsplit("/", 1)[-1]
    documents = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            documents.append(
                iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            )
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(
                PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
            )
            documents.append(version["PolicyVersion"]["Document"])
    statements: list[dict[str, Any]] = []
    for document in documents:
        if isinstance(document, str):  # moto and IAM return URL-encoded or parsed JSON
            from urllib.parse import unquote

            document = json.loads(unquote(document))
        statements += [s for s in _as_list(document.get("Statement", []))]
    return tuple(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def assume_execution_role(
    fn: FunctionConfig, sts: Any = None, iam: Any = None
) -> ExecutionIdentity:
    """sts:AssumeRole on the function's role, as the Lambda service does for each environment,
    plus the role's policies for the worker's IAM check."""
    if not fn.role:
        raise ExecutionRoleError(f"function {fn.name} has no execution role")
    sts = sts or boto3.client("sts")
    try:
        response = sts.assume_role(
            RoleArn=fn.role, RoleSessionName=fn.name[:64], DurationSeconds=3600
        )
        statements = role_statements(fn.role, iam)
    except Exception as exc:  # fail closed: no role, no run
        raise ExecutionRoleError(
            f"cannot assume or read the execution role {fn.role} of {fn.name}: {exc}"
        ) from exc
    creds = response["Credentials"]
    return ExecutionIdentity(
        credentials={
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        },
        principal_arn=response["AssumedRoleUser"]["Arn"],
        statements=statements,
    )


# -- code ------------------------------------------------------------------------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/key' -> (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def code_sha256(data: bytes) -> str:
    """CodeSha256 as Lambda reports it: base64 of the raw SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def verify_zip(data: bytes, expected_sha256: str, source: str) -> None:
    """Refuse code whose SHA-256 differs from the function's CodeSha256."""
    actual = code_sha256(data)
    if actual != expected_sha256:
        raise CodeIntegrityError(
            f"refusing to run {source}: its SHA-256 is {actual} but the function's CodeSha256 "
            f"is {expected_sha256}. The object changed after deployment; redeploy (make deploy)."
        )


def prepare_code(fn: FunctionConfig, cache_root: Path, s3: Any = None) -> Path:
    """Directory holding the function's code (LAMBDA_TASK_ROOT).

    Zip: the deployed zip from the emulator's S3 (tag ``package_s3_uri``), verified against
    CodeSha256 and unzipped once into a cache directory keyed by that hash. Image: the
    project's source tree (the image is built from it; the emulator cannot run images).
    """
    if fn.package_type == "Image":
        return source_tree()
    if fn.package_type != "Zip":
        raise ValueError(f"unsupported PackageType {fn.package_type!r}")
    if not fn.code_sha256:
        raise CodeIntegrityError(f"function {fn.name} reports no CodeSha256")
    digest_hex = base64.b64decode(fn.code_sha256).hex()
    target = Path(cache_root) / digest_hex
    if (target / ".verified").exists():
        make_read_only(target)  # extracted earlier from a zip with exactly this hash
        return target
    uri = fn.tags.get(PACKAGE_TAG)
    if not uri:
        raise CodeIntegrityError(
            f"function {fn.name} has no '{PACKAGE_TAG}' tag, so its zip cannot be located "
            "(the emulator's Code.Location is not reachable); deploy it with Terraform"
        )
    bucket, key = parse_s3_uri(uri)
    s3 = s3 or boto3.client("s3")
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if fn.version != LATEST and code_sha256(data) != fn.code_sha256:
        # A published version keeps the code it was published with, while the tag follows
        # the newest deployment: look for that zip among the bucket's object versions.
        found = find_published_zip(s3, bucket, key, fn)
        if found is None:
            raise CodeIntegrityError(
                f"version {fn.version} of {fn.name} has CodeSha256 {fn.code_sha256}, but "
                f"neither {uri} nor any object version under s3://{bucket}/"
                f"{key.rpartition('/')[0]} has that hash: its code is gone (publish a new "
                "version and move the alias to it)"
            )
        data, uri = found
    verify_zip(data, fn.code_sha256, uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest_hex[:12]}-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(staging)
        (staging / ".verified").write_text(json.dumps({"CodeSha256": fn.code_sha256, "from": uri}))
        make_read_only(staging)
        try:
            staging.rename(target)
        except OSError:  # another process extracted it first
            if not (target / ".verified").exists():
                raise
    finally:
        if staging.exists():
            remove_tree(staging)
    log.info("extracted %s (%d bytes) to %s", uri, len(data), target)
    return target


#: Object versions of the package's prefix downloaded at most while looking for a version's zip.
MAX_ZIP_CANDIDATES = 10


def find_published_zip(
    s3: Any, bucket: str, key: str, fn: FunctionConfig
) -> tuple[bytes, str] | None:
    """The zip with the version's CodeSha256 among the object versions (current and
    noncurrent) next to ``key``, newest first; candidates are those of the version's CodeSize."""
    prefix = key.rpartition("/")[0] + "/" if "/" in key else ""
    candidates = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Versions", []):
            if obj["Key"].endswith(".zip") and (not fn.code_size or obj["Size"] == fn.code_size):
                candidates.append(obj)
    candidates.sort(key=lambda obj: obj["LastModified"], reverse=True)
    for obj in candidates[:MAX_ZIP_CANDIDATES]:
        data = s3.get_object(Bucket=bucket, Key=obj["Key"], VersionId=obj["VersionId"])[
            "Body"
        ].read()
        if code_sha256(data) == fn.code_sha256:
            return data, f"s3://{bucket}/{obj['Key']}?versionId={obj['VersionId']}"
    return None


def make_read_only(root: Path) -> None:
    """chmod -R a-w: /var/task is read-only on Lambda (only /tmp is writable)."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def remove_tree(root: Path) -> None:
    """rm -rf for a read-only tree (restores write permission first)."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o700)
    shutil.rmtree(root, ignore_errors=True)


def source_tree() -> Path:
    """The repository root that holds lambda_function/ (what the image copies)."""
    root = REPO_ROOT
    if not (root / "lambda_function").is_dir():
        raise FileNotFoundError(f"no lambda_function/ package under {root}")
    return root


def image_handler(fn: FunctionConfig) -> str:
    """Handler of an image function: ImageConfig.Command, else the Dockerfile CMD."""
    if fn.image_command:
        return fn.image_command[0]
    dockerfile = source_tree() / "lambda_function" / "Dockerfile"
    if dockerfile.exists():
        for line in reversed(dockerfile.read_text().splitlines()):
            if line.strip().upper().startswith("CMD"):
                try:
                    command = json.loads(line.strip()[3:].strip())
                    if command:
                        return str(command[0])
                except json.JSONDecodeError:
                    return line.strip()[3:].strip().strip("\"'")
    return DEFAULT_IMAGE_HANDLER


# -- Kinesis -----------------------------------------------------------------------------------


def raw_kinesis_client() -> Any:
    """A Kinesis client that leaves blobs base64 and timestamps as epoch numbers.

    The event carries data base64-encoded anyway; skipping botocore's decode (and datetime
    parsing) halves the client-side cost of a 10,000-record GetRecords.
    """
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        blob_parser=lambda value: value, timestamp_parser=lambda value: value
    )
    return boto3.Session(botocore_session=session).client("kinesis")


class KinesisShards:
    """Reads one stream's shards with standard (polling) iterators."""

    def __init__(self, stream_arn: str, client: Any = None) -> None:
        self.stream_arn = stream_arn
        self.client = client or raw_kinesis_client()

    def shard_ids(self) -> list[str]:
        """Open and closed shards of the stream, in the order Kinesis lists them."""
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamARN": self.stream_arn}
        while True:
            page = self.client.list_shards(**kwargs)
            shards.extend(s["ShardId"] for s in page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def iterator(
        self,
        shard_id: str,
        *,
        after_sequence: str | None = None,
        position: str = "TRIM_HORIZON",
        timestamp: float | None = None,
    ) -> str:
        """A shard iterator after a checkpoint, or at the mapping's starting position."""
        kwargs: dict[str, Any] = {"StreamARN": self.stream_arn, "ShardId": shard_id}
        if after_sequence is not None:
            kwargs.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after_sequence
            )
        elif position == "AT_TIMESTAMP":
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=timestamp)
        else:
            kwargs.update(ShardIteratorType=position)
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def read(self, iterator: str, limit: int = 10000) -> tuple[list[StreamRecord], str | None]:
        """GetRecords: the records and the next iterator (None once a closed shard is done)."""
        response = self.client.get_records(
            ShardIterator=iterator, Limit=limit, StreamARN=self.stream_arn
        )
        records = [
            StreamRecord(
                sequence_number=r["SequenceNumber"],
                partition_key=r["PartitionKey"],
                data_b64=_as_base64(r["Data"]),
                arrival=_as_epoch(r["ApproximateArrivalTimestamp"]),
            )
            for r in response.get("Records", [])
        ]
        return records, response.get("NextShardIterator")


def _as_base64(data: str | bytes) -> str:
    # raw client: already base64 text; standard client: decoded bytes
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


def _as_epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value.timestamp())


# -- on-failure destinations ---------------------------------------------------------------------


class DestinationSink:
    """Sends on-failure records to SQS queues or SNS topics, by ARN."""

    def __init__(self, sqs: Any = None, sns: Any = None) -> None:
        self._sqs = sqs
        self._sns = sns
        self._queue_urls: dict[str, str] = {}

    def send(self, destination_arn: str, record: dict[str, Any]) -> None:
        """Deliver one record; raises on failure so the caller never loses it silently."""
        parts = destination_arn.split(":")
        service, body = parts[2], json.dumps(record)
        if service == "sqs":
            self._sqs = self._sqs or boto3.client("sqs")
            url = self._queue_urls.get(destination_arn)
            if url is None:
                url = self._sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])[
                    "QueueUrl"
                ]
                self._queue_urls[destination_arn] = url
            self._sqs.send_message(QueueUrl=url, MessageBody=body)
        elif service == "sns":
            self._sns = self._sns or boto3.client("sns")
            self._sns.publish(TopicArn=destination_arn, Message=body)
        else:
            raise ValueError(f"unsupported on-failure destination {destination_arn!r}")
