"""Local Lambda runtime CLI (for emulators that store Lambda functions but cannot run them).

    python -m emulation.local_lambda run [--function NAME] [--until-idle S] [--max-seconds N]
    python -m emulation.local_lambda invoke --event PATH [--function mushroom-scorer[:QUALIFIER]]

`make up` already runs this in the background service (emulation/services.py), for every
function; `run` refuses to poll the same checkpoints beside it (no record delivered twice).
`run` polls the function's enabled Kinesis event source mappings and invokes the version each
names ($LATEST, a version, or the version its alias points to now, followed when the alias
moves) with the Lambda service's semantics (batch size, starting position, ReportBatchItemFailures,
bisect on error, retry and record-age limits, on-failure destination). `invoke` does what
`aws lambda invoke` does and prints the response (an event over 6 MB is refused, as on AWS;
on the embedded emulator `aws lambda invoke` itself works too). The endpoint comes from
AWS_ENDPOINT_URL (`make up` writes it to .local/stack.env). On LocalStack with Docker, or on
AWS, the real service does all this and this runtime is not started.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import IO, Any, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from emulation.lambda_runtime import DEFAULT_FUNCTION, RunStats, invoke, run, run_until_idle
from emulation.lambda_runtime.aws import CodeIntegrityError, default_state_dir
from emulation.lambda_runtime.runtime import PollerBusy
from emulation.lambda_runtime.sandbox import RuntimeMismatch

__all__ = ["invoke", "main", "run", "run_until_idle", "RunStats"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulation.local_lambda",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="poll the function's Kinesis mappings and invoke it")
    run_p.add_argument("--function", default=DEFAULT_FUNCTION)
    run_p.add_argument(
        "--until-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds without new records",
    )
    run_p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        metavar="N",
        help="stop after N seconds in any case",
    )
    run_p.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="function logs (default .local/lambda-runtime/logs/<function>.log; " "'-' for stderr)",
    )
    run_p.add_argument(
        "--no-persist",
        action="store_true",
        help="keep checkpoints in memory only (default: .local/lambda-runtime)",
    )
    run_p.add_argument(
        "--latest-from-now",
        action="store_true",
        help="LATEST starts at the stream tip now, not when the mapping was made",
    )
    run_p.add_argument("--json", action="store_true", help="print the final statistics as JSON")
    inv_p = sub.add_parser("invoke", help="invoke once with an event file, like aws lambda invoke")
    inv_p.add_argument("--event", type=Path, required=True, help="JSON event file")
    inv_p.add_argument(
        "--function",
        default=DEFAULT_FUNCTION,
        help="name, name:VERSION, name:ALIAS or a function ARN (default %(default)s)",
    )
    inv_p.add_argument(
        "--log-file", type=Path, default=None, help="function logs (default: stderr)"
    )
    return parser


def _open_log(path: Path | None, default: Path | None) -> IO[Any] | None:
    target = path if path is not None else default
    if target is None or str(target) == "-":
        return None  # inherit stderr
    target.parent.mkdir(parents=True, exist_ok=True)
    return open(target, "ab")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[local-lambda] %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def say(message: str) -> None:
        print(f"[local-lambda] {message}", file=sys.stderr, flush=True)

    try:
        if args.command == "invoke":
            event = json.loads(args.event.read_text())
            log_stream = _open_log(args.log_file, None)
            try:
                response = invoke(args.function, event, log_stream=log_stream)
            finally:
                if log_stream:
                    log_stream.close()
            print(json.dumps(response, indent=2))
            return 0
        default_log = default_state_dir() / "logs" / f"{args.function}.log"
        log_stream = _open_log(args.log_file, default_log)
        if log_stream is not None:
            say(f"function logs -> {log_stream.name}")
        try:
            stats = run(
                args.function,
                until_idle=args.until_idle,
                max_seconds=args.max_seconds,
                persist_checkpoints=not args.no_persist,
                log_stream=log_stream,
                progress=say,
                latest_from="now" if args.latest_from_now else "mapping",
            )
        finally:
            if log_stream:
                log_stream.close()
        if args.json:
            print(json.dumps(stats.to_dict(), indent=2))
        return 0
    except (CodeIntegrityError, RuntimeMismatch, PollerBusy, FileNotFoundError, ValueError) as exc:
        say(f"error: {exc}")
        return 2
    except (ClientError, BotoCoreError) as exc:
        say(
            f"error talking to the emulator ({exc}); is it up (make up) and deployed (make deploy)?"
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
