"""Start, stop and inspect the local AWS emulator (make up / make down).

``python -m emulation.emulator up [--target moto|localstack] [--port N]``, ``down``, ``status``.

moto server runs as a detached process on a free 127.0.0.1 port (pid and endpoint in .local/);
LocalStack runs through docker compose (docker-compose.yml) on http://localhost:4566. Either way
the endpoint and dummy credentials go to .local/stack.env as ``export KEY=value`` lines, which the
Makefile includes and bash can ``source``; boto3 and Terraform pick up AWS_ENDPOINT_URL from there.

On moto, ``up`` also starts the background service (emulation/services.py: the local Lambda
runtime polling every enabled event source mapping), so a record put on the input stream gets
its verdict with no other command; ``down`` stops both, ``status`` reports both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from config.settings import LOCAL_DIR, REPO_ROOT
from config.stack_env import (
    EMULATOR_KEYS,
    EmulatorState,
    clear_state,
    read_state,
    stack_env_path,
    update_stack_env,
    write_state,
)
from deployment.terraform_cli import state_dir
from emulation import services
from emulation.processes import log_tail, spawn_module

TARGETS = ("moto", "localstack")
HOST = "127.0.0.1"
LOCALSTACK_ENDPOINT = "http://localhost:4566"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
LOG_NAME = "moto.log"
DEFAULT_REGION = "us-east-1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class EmulatorError(RuntimeError):
    """The emulator cannot be started, reached or stopped."""


def emulator_env(target: str, endpoint: str) -> dict[str, str]:
    """The stack.env lines for an emulator: endpoint, region and the emulators' dummy keys."""
    return {
        "AWS_TARGET": target,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_REGION": DEFAULT_REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


# ---------------------------------------------------------------------------------------------
# Process and network helpers
# ---------------------------------------------------------------------------------------------


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something already listens on (or holds) host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = HOST) -> int:
    """A port the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def endpoint_answers(endpoint: str, path: str = "/", timeout: float = 1.0) -> bool:
    """True when an HTTP server answers at endpoint (any status code counts)."""
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + path, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_until_ready(
    endpoint: str,
    timeout: float = START_TIMEOUT_S,
    *,
    path: str = "/",
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.1,
) -> float:
    """Poll `endpoint` until it answers; return the seconds waited.

    Raises EmulatorError after `timeout` seconds, or as soon as `process` (the server being
    started) exits.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if endpoint_answers(endpoint, path):
            return time.monotonic() - start
        if process is not None and process.poll() is not None:
            raise EmulatorError(
                f"the emulator exited with code {process.returncode} while starting"
            )
        if time.monotonic() >= deadline:
            raise EmulatorError(f"{endpoint} did not answer within {timeout:.0f} s")
        time.sleep(interval)


def _pid_alive(pid: int) -> bool:
    try:
        # Reap it first if it is our own exited child (a zombie still "exists").
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_moto_process(pid: int) -> bool:
    """Guard against a recycled pid: only a moto server may be stopped by `down`."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return b"moto" in cmdline.read_bytes()
        except OSError:
            return False
    return _pid_alive(pid)  # no /proc (macOS): trust the pid file


def is_running(state: EmulatorState | None) -> bool:
    """True when the recorded emulator still runs and answers."""
    if state is None:
        return False
    if state.pid is not None and not (_pid_alive(state.pid) and _is_moto_process(state.pid)):
        return False
    return endpoint_answers(state.endpoint)


def _forget_stack(target: str, local_dir: Path) -> None:
    """A new (empty) emulator invalidates the Terraform state and outputs of the previous one."""
    directory = state_dir(target, local_dir)
    for name in ("terraform.tfstate", "terraform.tfstate.backup", "outputs.json"):
        (directory / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _moto_env(endpoint: str, local_dir: Path) -> dict[str, str]:
    """moto server's environment: its Invoke runs functions through the local runtime, whose
    boto3 calls go back to this same server, with the stack's runtime state directory."""
    env = {**os.environ, **emulator_env("moto", endpoint)}
    env["LOCAL_LAMBDA_STATE_DIR"] = str(services.runtime_state_dir(local_dir, env))
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    return env


def _start_moto(port: int | None, local_dir: Path, timeout: float) -> EmulatorState:
    if port is None:
        port = free_port()
    elif port_in_use(port):
        raise EmulatorError(
            f"port {port} on {HOST} is already in use by another process; "
            "stop it, pick another --port (or MOTO_PORT), or omit it to get a free port"
        )
    local_dir.mkdir(parents=True, exist_ok=True)
    log_path = local_dir / LOG_NAME
    endpoint = f"http://{HOST}:{port}"
    # moto with the local Lambda runtime's patches (emulation/lambda_runtime/moto_patches.py):
    # stock moto tries to run mapped functions itself through Docker on every put.
    process = spawn_module(
        "emulation.lambda_runtime.moto_server",
        ["-H", HOST, "-p", str(port)],
        env=_moto_env(endpoint, local_dir),
        log_path=log_path,
        append=False,
    )
    try:
        wait_until_ready(endpoint, timeout, path="/moto-api/", process=process)
    except EmulatorError as error:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise EmulatorError(
            f"moto server failed to start on {endpoint}: {error}\n{log_tail(log_path)}"
        ) from None
    return EmulatorState(target="moto", endpoint=endpoint, pid=process.pid, port=port)


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    hint = (
        "AWS_TARGET=localstack needs Docker (docker compose, a running engine); "
        "this machine has none: use the embedded emulator instead (make up, AWS_TARGET=moto)"
    )
    if docker is None:
        raise EmulatorError(f"docker is not installed. {hint}")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        raise EmulatorError(
            f"the Docker engine is not reachable ({info.stderr.strip()[:200]}). {hint}"
        )
    return [docker, "compose", "-f", str(COMPOSE_FILE)]


def _start_localstack(timeout: float) -> EmulatorState:
    compose = _docker_compose()
    subprocess.run([*compose, "up", "-d"], check=True)
    wait_until_ready(LOCALSTACK_ENDPOINT, timeout, path="/_localstack/health")
    return EmulatorState(target="localstack", endpoint=LOCALSTACK_ENDPOINT, port=4566)


def start_emulator(
    target: str = "moto",
    port: int | None = None,
    local_dir: Path = LOCAL_DIR,
    timeout: float = START_TIMEOUT_S,
    *,
    background_service: bool = False,
) -> EmulatorState:
    """Start the emulator (or find the running one) and write .local/stack.env; idempotent.

    ``background_service`` (moto only; `make up` and the demo): also start the background
    service, which polls every enabled event source mapping; without it (tests, demo-drift)
    the caller runs the local Lambda runtime itself. Raises EmulatorError with the reason when
    something cannot start (port taken, no Docker, ...).
    """
    if target not in TARGETS:
        raise EmulatorError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    current = read_state(local_dir)
    if current is not None and is_running(current):
        if current.target != target:
            raise EmulatorError(
                f"{current.target} is already running at {current.endpoint}; run `make down` first"
            )
        if port is not None and current.port != port:
            raise EmulatorError(
                f"{current.target} is already running on port {current.port}, not {port}; "
                "run `make down` first"
            )
        state = current
    else:
        clear_state(local_dir)
        services.stop_services(local_dir)  # one left from an emulator that died polls nothing
        if target == "moto":
            state = _start_moto(port, local_dir, timeout)
        else:
            state = _start_localstack(timeout)
        write_state(state, local_dir)
        _forget_stack(target, local_dir)
    env = emulator_env(state.target, state.endpoint)
    update_stack_env(stack_env_path(local_dir), env)
    if background_service and state.target == "moto":
        try:
            services.start_services(local_dir, {**env, **_moto_env(state.endpoint, local_dir)})
        except services.ServiceError as error:
            raise EmulatorError(str(error)) from None
    return state


def _outputs_keys(local_dir: Path) -> set[str]:
    """Names of the Terraform outputs deploy wrote to stack.env, for every target."""
    keys: set[str] = set()
    for outputs in (local_dir / "terraform").glob("*/outputs.json"):
        try:
            keys.update(k.upper() for k in json.loads(outputs.read_text()))
        except ValueError:
            continue
    return keys


def stop_emulator(local_dir: Path = LOCAL_DIR, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the emulator started by `up` and remove its lines from stack.env.

    The stack's outputs go too: the emulator keeps its resources in memory, so they are gone.
    Returns True when a running emulator was stopped.
    """
    state = read_state(local_dir)
    # The pollers first: they would only log errors against a stopped emulator.
    stopped = services.stop_services(local_dir)
    if state is not None and state.target == "moto" and state.pid is not None:
        if _pid_alive(state.pid) and _is_moto_process(state.pid):
            os.killpg(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(state.pid):
                os.killpg(state.pid, signal.SIGKILL)
            stopped = True
    elif state is not None and state.target == "localstack":
        subprocess.run([*_docker_compose(), "down"], check=True)
        stopped = True
    remove = set(EMULATOR_KEYS) | _outputs_keys(local_dir)
    if state is not None:
        _forget_stack(state.target, local_dir)
    update_stack_env(stack_env_path(local_dir), remove=remove)
    clear_state(local_dir)
    return stopped


def status(local_dir: Path = LOCAL_DIR) -> EmulatorState | None:
    """The running emulator, or None."""
    state = read_state(local_dir)
    return state if is_running(state) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m emulation.emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the emulator (idempotent)")
    up.add_argument("--target", choices=TARGETS, default=os.environ.get("AWS_TARGET", "moto"))
    up.add_argument(
        "--port",
        type=int,
        default=int(os.environ["MOTO_PORT"]) if "MOTO_PORT" in os.environ else None,
    )
    up.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    up.add_argument(
        "--no-service",
        action="store_true",
        help="do not start the background service (run the local Lambda runtime yourself)",
    )
    sub.add_parser("down", help="stop the emulator and the background service")
    sub.add_parser("status", help="show whether the emulator and the background service run")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            state = start_emulator(
                args.target,
                args.port,
                timeout=args.timeout,
                background_service=not args.no_service,
            )
            print(f"{state.target} running at {state.endpoint} (pid {state.pid or '-'})")
            service = services.service_status()
            if service is not None and service.running:
                print(
                    f"background service running (pid {service.pid}): polls every enabled "
                    f"event source mapping; log {service.log}"
                )
            print(f"environment: {stack_env_path()}  (source it, or let make include it)")
        elif args.command == "down":
            print("emulator stopped" if stop_emulator() else "no emulator was running")
        else:
            return _print_status()
    except EmulatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _print_status(local_dir: Path = LOCAL_DIR) -> int:
    """`make status`: 0 when the emulator and (on moto) the background service are healthy."""
    state = status(local_dir)
    service = services.service_status(local_dir)
    if state is None:
        print("no emulator running (make up)")
        if service is not None and service.running:
            print(f"background service still running (pid {service.pid}): make down stops it")
        return 3
    print(f"{state.target} running at {state.endpoint} (pid {state.pid or '-'})")
    if state.target != "moto":
        return 0  # LocalStack runs functions itself
    if service is None:
        print("background service: not started: records are not scored (make up starts it)")
        return 1
    print("\n".join(service.lines()))
    return 0 if service.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
