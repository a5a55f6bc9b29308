"""Serve the Prefect deployments (``make orchestrate`` = ``python -m orchestration.serve``).

- Uses the Prefect server at ``PREFECT_API_URL`` when one answers there; otherwise starts a local
  one (``prefect server start`` on a free 127.0.0.1 port, log in .local/prefect-server.log) and
  stops it again on exit.
- Serves two deployments from this process: ``mushroom-monitoring/scheduled`` every
  ``MONITORING_INTERVAL_MINUTES`` (default 5) and ``mushroom-training/on-demand`` (run it from
  the UI, or with the command it prints: ``prefect deployment run`` with ``PREFECT_API_URL``
  set to this server; without it, the CLI starts a temporary server of its own, which no one
  serves, and the run is never picked up).
- The monitoring deployment runs one flow at a time (concurrency limit 1): a run scheduled
  while one is still going is cancelled (``CANCEL_NEW``), the next one reads what it left. The
  cycle's own lease (``monitoring.lease``) also refuses cycles started outside Prefect.
- Prints the UI address. Ctrl-C stops serving.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

START_TIMEOUT_S = 120.0


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start ``prefect server start`` on a free port; return the process and its API URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # a port the OS considers free right now
        port = int(sock.getsockname()[1])
    api_url = f"http://127.0.0.1:{port}/api"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PREFECT_API_URL": api_url},
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(api_url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            why = f"exited with {process.returncode}" if process.returncode else "no answer"
            raise RuntimeError(f"the Prefect server did not start ({why}); see {log_path}")
        time.sleep(0.5)
    return process, api_url


def run_hint(api_url: str, deployment: Any) -> str:
    """The command that runs ``deployment`` on the server at ``api_url`` now, pasted into
    another terminal at the repository root (the virtualenv's ``prefect``, the server named)."""
    name = f"{deployment.flow_name}/{deployment.name}"
    return (
        f"PREFECT_API_URL={shlex.quote(api_url)} .venv/bin/prefect deployment run "
        f"{shlex.quote(name)}"
    )


def deployments(interval_minutes: float) -> tuple[Any, Any]:
    """The monitoring (scheduled, one run at a time) and training (on demand) deployments."""
    from prefect.client.schemas.objects import (  # noqa: PLC0415
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )

    from orchestration.flows import monitoring_flow, training_flow  # noqa: PLC0415

    monitoring = monitoring_flow.to_deployment(
        name="scheduled",
        interval=timedelta(minutes=interval_minutes),
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
    )
    return monitoring, training_flow.to_deployment(name="on-demand")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.serve", description=__doc__)
    parser.add_argument(
        "--interval-minutes",
        type=float,
        default=float(os.environ.get("MONITORING_INTERVAL_MINUTES") or 5),
    )
    parser.add_argument(
        "--check", action="store_true", help="register the deployments and exit (no serving)"
    )
    args = parser.parse_args(argv)

    from config.settings import Settings  # noqa: PLC0415

    settings = Settings.from_env()
    api_url = os.environ.get("PREFECT_API_URL")
    server = None
    if not (api_url and _healthy(api_url)):
        print("no Prefect server at PREFECT_API_URL; starting a local one ...", flush=True)
        server, api_url = start_server(settings.local_dir / "prefect-server.log")
    # Set before Prefect reads its settings, so every client in this process uses this server.
    os.environ["PREFECT_API_URL"] = api_url
    ui_url = api_url.removesuffix("/api")
    print(f"Prefect UI: {ui_url}", flush=True)
    try:
        from prefect import serve  # noqa: PLC0415
        from prefect.client.orchestration import get_client  # noqa: PLC0415

        monitoring, training = deployments(args.interval_minutes)
        if args.check:
            for deployment in (monitoring, training):
                deployment.apply()
            with get_client(sync_client=True) as client:
                limits = {
                    d.name: (
                        d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
                        (
                            d.concurrency_options.collision_strategy.value
                            if d.concurrency_options
                            else None
                        ),
                    )
                    for d in client.read_deployments()
                }
            print(f"deployments registered: {sorted(limits)}; concurrency limits: {limits}")
            return 0
        print(
            f"serving mushroom-monitoring/scheduled (every {args.interval_minutes:g} min) and "
            "mushroom-training/on-demand; Ctrl-C to stop\n"
            "train now (from another terminal at the repository root, while this one serves): "
            f"{run_hint(api_url, training)}",
            flush=True,
        )
        serve(monitoring, training)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
