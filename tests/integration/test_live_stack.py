"""`make up` runs the embedded stack like a deployed one: the background service scores what is
put with the AWS CLI, `aws lambda invoke` runs the published code, `make down` leaves nothing.

The stack is started and stopped with the same command `make up` / `make down` run, under a
temporary MUSHROOM_LOCAL_DIR; the function is the small test function of lambda_stack.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import REPO_ROOT
from config.stack_env import read_stack_env
from tests.integration.lambda_stack import Stack, kinesis_record, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

AWS = str(Path(sys.executable).with_name("aws"))


class LiveStack:
    """The commands a person types, against one stack directory."""

    def __init__(self, local_dir: Path) -> None:
        self.local_dir = local_dir
        self.env = {**os.environ, "MUSHROOM_LOCAL_DIR": str(local_dir)}
        for key in [k for k in self.env if k.startswith("AWS_")]:
            del self.env[key]
        self.env.pop("LOCAL_LAMBDA_STATE_DIR", None)

    def emulator(self, command: str) -> subprocess.CompletedProcess[str]:
        """``make up`` / ``make down`` / ``make status`` (what the Makefile runs)."""
        return subprocess.run(
            [sys.executable, "-m", "emulation.emulator", command],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``make aws ARGS="..."``: the venv's AWS CLI with the stack.env of this stack."""
        env = {**self.env, **read_stack_env(self.local_dir / "stack.env")}
        done = subprocess.run(
            [AWS, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode:
            raise AssertionError(f"aws {' '.join(args)} failed: {done.stderr}")
        return done

    def group_pids(self) -> set[int]:
        """Every live process in the process groups of moto server and the service."""
        leaders = {
            int(json.loads((self.local_dir / name).read_text())["pid"])
            for name in ("emulator.json", "services.json")
        }
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) in leaders:
                        found.add(int(entry.name))
                except ProcessLookupError:
                    continue
        return found


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    stack = LiveStack(tmp_path_factory.mktemp("live"))
    up = stack.emulator("up")
    assert up.returncode == 0, up.stderr
    assert "background service running" in up.stdout
    saved = dict(os.environ)
    os.environ.update(read_stack_env(stack.local_dir / "stack.env"))
    try:
        yield stack
    finally:
        stack.emulator("down")
        os.environ.clear()
        os.environ.update(saved)


def _outputs(stack: Stack) -> list[dict[str, Any]]:
    return stack.outputs()


def test_a_record_put_with_the_cli_gets_its_output_with_no_other_command(live: LiveStack) -> None:
    status = live.emulator("status")
    assert status.returncode == 0, status.stdout
    assert "background service: healthy" in status.stdout
    # Function and mapping made after the service started: it lists mappings again.
    stack = Stack("cli")
    stack.deploy()
    uuid = stack.map(BatchSize=10)["UUID"]
    put = live.aws(
        "kinesis",
        "put-record",
        "--stream-name",
        stack.input,
        "--partition-key",
        "cli-1",
        "--data",
        json.dumps({"id": "cli-1"}),
    )
    sequence = json.loads(put.stdout)["SequenceNumber"]

    (output,) = wait_for(lambda: _outputs(stack), timeout=60)
    assert output["id"] == "cli-1" and output["seq"] == sequence
    healthy = wait_for(
        lambda: "records_read 1, records_succeeded 1" in (s := live.emulator("status").stdout)
        and s,
        timeout=30,
    )
    assert f"{stack.function} (polling)" in healthy

    # Disabled: nothing is polled any more; enabled again, the record put meanwhile is scored.
    stack.lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)
    wait_for(lambda: f"{stack.function} (polling)" not in live.emulator("status").stdout)
    live.aws("kinesis", "put-record", "--stream-name", stack.input, "--partition-key", "k",
             "--data", json.dumps({"id": "cli-2"}))  # fmt: skip
    stack.lambda_.update_event_source_mapping(UUID=uuid, Enabled=True)
    outputs = wait_for(lambda: len(o := _outputs(stack)) >= 2 and o, timeout=60)
    assert sorted(o["id"] for o in outputs) == ["cli-1", "cli-2"]  # each exactly once


def test_aws_lambda_invoke_runs_the_published_code(live: LiveStack, tmp_path: Path) -> None:
    stack = Stack("invoke")
    stack.deploy(timeout=5)
    version = stack.publish("v1")
    stack.lambda_.create_alias(FunctionName=stack.function, Name="live", FunctionVersion=version)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": [kinesis_record(stack, {"id": "inv-1"})]}))
    out = tmp_path / "out.json"

    done = live.aws(
        "lambda", "invoke", "--function-name", stack.function, "--qualifier", "live",
        "--payload", f"fileb://{event}", "--log-type", "Tail", str(out),
    )  # fmt: skip
    response = json.loads(done.stdout)
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == version
    assert json.loads(out.read_text()) == {"batchItemFailures": []}
    tail = base64.b64decode(response["LogResult"]).decode()
    assert tail.startswith("START RequestId: ") and f"Version: {version}" in tail
    assert "REPORT RequestId: " in tail and "Max Memory Used: " in tail
    (output,) = wait_for(lambda: _outputs(stack))
    assert output["greeting"] == "v1" and output["invoked_arn"].endswith(":live")

    # The handler raises: 200, FunctionError and the error as the payload, the traceback logged.
    event.write_text(json.dumps({"Records": [kinesis_record(stack, {"id": "x", "poison": 1})]}))
    done = live.aws(
        "lambda", "invoke", "--function-name", f"{stack.function}:{version}",
        "--payload", f"fileb://{event}", "--log-type", "Tail", str(out),
    )  # fmt: skip
    response = json.loads(done.stdout)
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    error = json.loads(out.read_text())
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "poison record x"
    assert "Traceback" in base64.b64decode(response["LogResult"]).decode()

    # Over 6 MB: refused before anything runs, as Lambda refuses it.
    event.write_text(json.dumps({"Records": [], "pad": "x" * 6_291_456}))
    done = live.aws(
        "lambda", "invoke", "--function-name", stack.function, "--payload", f"fileb://{event}",
        str(out), check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "RequestEntityTooLargeException" in done.stderr
    assert "6291456 bytes" in done.stderr

    # No such function or alias: ResourceNotFound, as on AWS.
    done = live.aws(
        "lambda", "invoke", "--function-name", stack.function, "--qualifier", "nope",
        "--payload", "{}", str(out), check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "ResourceNotFoundException" in done.stderr


def test_make_down_leaves_no_process_behind(live: LiveStack) -> None:
    # Runs last in this module: workers exist in both groups after the tests above.
    pids = live.group_pids()
    assert len(pids) >= 4, pids  # moto, its Invoke worker, the service, its polling worker
    down = live.emulator("down")
    assert down.returncode == 0 and "emulator stopped" in down.stdout

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
    assert not (live.local_dir / "services.json").exists()
    status = live.emulator("status")
    assert status.returncode == 3 and "no emulator running" in status.stdout
