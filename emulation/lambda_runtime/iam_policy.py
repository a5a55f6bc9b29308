"""The execution role's identity policies, evaluated for each AWS call the function makes.

The emulator does not enforce IAM, so the local bootstrap installs ``install_guard`` before it
imports the function: a botocore ``before-parameter-build`` hook on every client that builds
the call's action (``service:Operation``), resource ARN and condition keys, evaluates the role's
identity-policy statements like IAM does (an explicit Deny wins, then an Allow is needed), and
raises an AccessDenied ClientError, without sending the request, when they do not allow it.

How far it goes: identity policies only (inline and attached to the role). No resource
policies, SCPs, permission boundaries, session policies or KMS key policies. Resource ARNs are
built for Kinesis streams, S3 buckets/objects, CloudWatch Logs groups/streams, SQS queues and
CloudWatch alarms; other calls are matched against ``Resource: "*"``. Condition keys:
``cloudwatch:namespace``, ``s3:prefix``, ``aws:RequestedRegion``, ``aws:PrincipalArn``; any
other key in a statement that applies to the call denies it, and the error says so.

Standard library only: the worker loads this file by path, the project imports it for tests.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Iterable
from urllib.parse import urlparse

#: Operations whose IAM action differs from ``<prefix>:<Operation>``.
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListBuckets": "ListAllMyBuckets",
    "DeleteObjects": "DeleteObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "CopyObject": "PutObject",
}
#: boto3 service name -> IAM service prefix, where they differ.
IAM_PREFIXES = {"stepfunctions": "states", "elbv2": "elasticloadbalancing"}
#: Calls IAM never refuses.
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}
SUPPORTED_CONDITION_KEYS = (
    "cloudwatch:namespace",
    "s3:prefix",
    "aws:requestedregion",
    "aws:principalarn",
)


def request_context(
    service: str, operation: str, params: dict[str, Any], region: str, account: str, principal: str
) -> tuple[str, str, dict[str, str]]:
    """(action, resource ARN, condition keys) of one API call."""
    prefix = IAM_PREFIXES.get(service, service)
    name = S3_ACTIONS.get(operation, operation) if service == "s3" else operation
    action = f"{prefix}:{name}"
    keys = {"aws:RequestedRegion": region, "aws:PrincipalArn": principal}
    resource = "*"
    if service == "kinesis":
        resource = params.get("StreamARN") or params.get("ConsumerARN") or "*"
        if resource == "*" and params.get("StreamName"):
            resource = f"arn:aws:kinesis:{region}:{account}:stream/{params['StreamName']}"
    elif service == "s3" and params.get("Bucket"):
        resource = f"arn:aws:s3:::{params['Bucket']}"
        if params.get("Key") is not None and name != "ListBucket":
            resource += f"/{params['Key']}"
        if name == "ListBucket":
            keys["s3:prefix"] = params.get("Prefix", "")
    elif service == "logs" and params.get("logGroupName"):
        resource = f"arn:aws:logs:{region}:{account}:log-group:{params['logGroupName']}"
        if params.get("logStreamName"):
            resource += f":log-stream:{params['logStreamName']}"
    elif service == "sqs":
        resource = _queue_arn(params, region, account)
    elif service == "cloudwatch":
        if "Namespace" in params and operation == "PutMetricData":
            keys["cloudwatch:namespace"] = params["Namespace"]
        names = params.get("AlarmNames") or ([params["AlarmName"]] if "AlarmName" in params else [])
        if len(names) == 1:
            resource = f"arn:aws:cloudwatch:{region}:{account}:alarm:{names[0]}"
    return action, resource, keys


def _queue_arn(params: dict[str, Any], region: str, account: str) -> str:
    if params.get("QueueUrl"):
        parts = urlparse(params["QueueUrl"]).path.strip("/").split("/")
        if len(parts) == 2:
            return f"arn:aws:sqs:{region}:{parts[0]}:{parts[1]}"
    if params.get("QueueName"):
        owner = params.get("QueueOwnerAWSAccountId") or account
        return f"arn:aws:sqs:{region}:{owner}:{params['QueueName']}"
    return "*"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Iterable[str], value: str, ignore_case: bool) -> bool:
    for pattern in patterns:
        if re.match(fnmatch.translate(pattern), value, re.IGNORECASE if ignore_case else 0):
            return True
    return False


def _statement_applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _matches(_as_list(statement["Action"]), action, ignore_case=True)
    else:
        action_ok = not _matches(_as_list(statement.get("NotAction", [])), action, True)
    if "Resource" in statement:
        resource_ok = _matches(_as_list(statement["Resource"]), resource, ignore_case=False)
    else:
        resource_ok = not _matches(_as_list(statement.get("NotResource", [])), resource, False)
    return action_ok and resource_ok


def _condition_holds(conditions: dict[str, Any], keys: dict[str, str]) -> tuple[bool, str | None]:
    """(holds, why it cannot be evaluated or None)."""
    lowered = {k.lower(): v for k, v in keys.items()}
    for operator, tests in conditions.items():
        base = operator[:-8] if operator.endswith("IfExists") else operator
        for key, expected in tests.items():
            if key.lower() not in SUPPORTED_CONDITION_KEYS:
                return False, f"condition key {key} cannot be evaluated locally"
            value = lowered.get(key.lower())
            if base == "Null":
                if (value is None) != (str(expected).lower() == "true"):
                    return False, None
                continue
            if value is None:
                if operator.endswith("IfExists"):
                    continue
                return False, None
            wanted = [str(v) for v in _as_list(expected)]
            if base in ("StringEquals", "ArnEquals"):
                ok = value in wanted
            elif base == "StringEqualsIgnoreCase":
                ok = value.lower() in [w.lower() for w in wanted]
            elif base in ("StringLike", "ArnLike"):
                ok = _matches(wanted, value, ignore_case=False)
            elif base in ("StringNotEquals", "ArnNotEquals"):
                ok = value not in wanted
            elif base in ("StringNotLike", "ArnNotLike"):
                ok = not _matches(wanted, value, ignore_case=False)
            else:
                return False, f"condition operator {operator} cannot be evaluated locally"
            if not ok:
                return False, None
    return True, None


def evaluate(
    statements: Iterable[dict[str, Any]], action: str, resource: str, keys: dict[str, str]
) -> tuple[bool, str]:
    """(allowed, reason) for one request, with IAM's logic for identity policies."""
    if action in ALWAYS_ALLOWED:
        return True, "always allowed"
    allowed, unknown = False, None
    for statement in statements:
        if not _statement_applies(statement, action, resource):
            continue
        holds, problem = _condition_holds(statement.get("Condition") or {}, keys)
        if problem:
            unknown = unknown or problem
            continue
        if holds and statement.get("Effect") == "Deny":
            return False, "an explicit deny in an identity-based policy"
        if holds and statement.get("Effect") == "Allow":
            allowed = True
    if unknown:  # fail closed: a statement that might deny (or must allow) was not evaluated
        return False, f"the local IAM check refuses: {unknown}"
    if allowed:
        return True, "allowed by an identity-based policy"
    return False, f"no identity-based policy allows the {action} action"


def error_code(service: str) -> str:
    """The error code AWS returns for a refused call of this service."""
    return "AccessDeniedException" if service in ("kinesis", "logs", "lambda") else "AccessDenied"


def install_guard(principal: str, statements: list[dict[str, Any]]) -> None:
    """Make every botocore client created from now on check its calls against the policies."""
    import botocore.session
    from botocore.exceptions import ClientError

    account = principal.split(":")[4]
    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        service = client.meta.service_model.service_name
        region = client.meta.region_name or ""

        def check(params: dict[str, Any], model: Any, **_: Any) -> None:
            action, resource, keys = request_context(
                service, model.name, params, region, account, principal
            )
            allowed, reason = evaluate(statements, action, resource, keys)
            if not allowed:
                message = (
                    f"User: {principal} is not authorized to perform: {action} on resource: "
                    f"{resource} because {reason}"
                )
                raise ClientError(
                    {"Error": {"Code": error_code(service), "Message": message}}, model.name
                )

        client.meta.events.register("before-parameter-build", check)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
