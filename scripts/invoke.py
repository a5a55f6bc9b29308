"""`make invoke`: one Kinesis event through the deployed function, and the verdicts it produced.

Invokes the function as ``aws lambda invoke`` would (``emulation.local_lambda.invoke``: the
emulator stores functions but cannot run them), prints its response, then reads the verdict
stream after the invocation and prints one line per record: mushroom id -> verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from botocore.exceptions import BotoCoreError, ClientError

import producer
from config.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.invoke", description=__doc__)
    parser.add_argument("--event", type=Path, required=True, help="JSON Kinesis event file")
    parser.add_argument("--function", default="mushroom-scorer")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for verdicts")
    args = parser.parse_args(argv)

    from emulation.local_lambda import invoke
    from monitoring.aws import KinesisStreamReader

    event = json.loads(args.event.read_text())
    records = event.get("Records", [])
    stream = Settings.from_env().output_stream_name
    try:
        checkpoint = KinesisStreamReader(stream).read({}).checkpoint
        response = invoke(args.function, event)
        print(json.dumps(response, indent=2))
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
