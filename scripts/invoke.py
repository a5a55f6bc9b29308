"""`make invoke`: one Kinesis event through the deployed function, and the verdicts it produced.

Calls Lambda's Invoke API as ``aws lambda invoke`` does (on the embedded emulator, moto's Invoke
runs the published code through the local Lambda runtime), on the alias ``live`` by default:
what the event source mapping invokes, i.e. what is served. ``--qualifier`` picks a version
number or ``LATEST`` ($LATEST) instead. Prints the response (StatusCode, ExecutedVersion,
FunctionError, Payload), then reads the verdict stream after the invocation and prints one line
per record: mushroom id -> verdict. An event over 6 MB is refused before it is sent, as Lambda
would refuse it (413 RequestEntityTooLarge).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from botocore.exceptions import BotoCoreError, ClientError

import producer
from config.settings import Settings

DEFAULT_QUALIFIER = "live"


def qualifier_of(value: str | None) -> str | None:
    """The Invoke Qualifier for ``--qualifier``: None for $LATEST (``LATEST`` or ``$LATEST``,
    which make cannot pass unescaped), else the alias or version as given."""
    if value is None or value.strip() in ("", "LATEST", "$LATEST"):
        return None
    return value.strip()


def invoke(function: str, qualifier: str | None, payload: bytes, client: Any) -> dict[str, Any]:
    """Lambda Invoke (RequestResponse); the response with the payload decoded."""
    kwargs = {"Qualifier": qualifier} if qualifier else {}
    response = client.invoke(FunctionName=function, Payload=payload, **kwargs)
    body = response["Payload"].read()
    out: dict[str, Any] = {
        "StatusCode": response["StatusCode"],
        "ExecutedVersion": response.get("ExecutedVersion"),
    }
    if response.get("FunctionError"):
        out["FunctionError"] = response["FunctionError"]
    out["Payload"] = json.loads(body) if body else None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.invoke", description=__doc__)
    parser.add_argument("--event", type=Path, required=True, help="JSON Kinesis event file")
    parser.add_argument("--function", default="mushroom-scorer")
    parser.add_argument(
        "--qualifier",
        default=DEFAULT_QUALIFIER,
        help="alias or version to invoke; LATEST for $LATEST (default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for verdicts")
    args = parser.parse_args(argv)

    import boto3

    from emulation.lambda_runtime.runtime import PayloadTooLarge, check_payload_size
    from monitoring.aws import KinesisStreamReader

    payload = args.event.read_bytes()
    try:
        check_payload_size(len(payload))
    except PayloadTooLarge as exc:
        print(f"error: {args.event}: {exc}", file=sys.stderr)
        return 2
    records = json.loads(payload).get("Records", [])
    qualifier = qualifier_of(args.qualifier)
    stream = Settings.from_env().output_stream_name
    try:
        checkpoint = KinesisStreamReader(stream).read({}).checkpoint
        response = invoke(args.function, qualifier, payload, boto3.client("lambda"))
        print(json.dumps(response, indent=2))
        if response.get("FunctionError"):
            print(f"the function failed: {response['FunctionError']}", file=sys.stderr)
            return 1
        verdicts = producer.read_verdicts(stream, checkpoint, len(records), args.timeout)
    except (ClientError, BotoCoreError) as exc:
        print(
            f"error talking to the stack ({exc}); is it up (make up) and deployed (make deploy)?",
            file=sys.stderr,
        )
        return 2
    print(f"{len(verdicts)} verdicts on {stream} for {len(records)} records:")
    for line in producer.verdict_lines(records, verdicts):
        print(f"  {line}")
    return 0 if len(verdicts) == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
