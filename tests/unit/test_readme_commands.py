"""Every command the README shows is well-formed: the make targets exist, the Python modules
take the options shown, the virtualenv's tools exist, and the `source .local/stack.env` one
reaches the stack's endpoint from a fresh terminal. (The `mlflow models serve` snippet runs
against a live stack in tests/integration/test_readme_snippets.py.)"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from config.settings import REPO_ROOT
from tests.fakes import LOOPBACK_ONLY
from tests.unit.test_makefile import _fresh_terminal, _stack_env

README = (REPO_ROOT / "README.md").read_text()
TARGETS = set(re.findall(r"^([A-Za-z0-9_.-]+):", (REPO_ROOT / "Makefile").read_text(), re.M))


def commands() -> list[str]:
    """The README's commands: inline code spans that start like one, and bash block lines."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", prose)
    starts = ("make ", "python -m ", ".venv/bin/", "source ")
    found = [part.strip() for s in spans + lines for part in s.split("&&")]
    return sorted({c.split("  #")[0].strip() for c in found if c.startswith(starts)})


def test_the_readme_shows_commands():
    found = commands()
    assert "make demo" in found and "python -m orchestration.rollout --status" in found
    assert any(c.startswith("source .local/stack.env") for c in found)


@pytest.mark.parametrize("command", [c for c in commands() if c.startswith("make ")])
def test_every_make_command_names_a_target_and_variables(command):
    words = shlex.split(command)
    for target in words[1].split("/"):  # `make up/down`
        assert target in TARGETS, command
    for word in words[2:]:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", word), command


@pytest.mark.parametrize(
    "command", [c for c in commands() if re.match(r"(\.venv/bin/)?python -m ", c)]
)
def test_every_python_command_names_a_module_that_takes_its_options(command):
    words = shlex.split(command.replace("<", "'<").replace(">", ">'"))
    module = words[words.index("-m") + 1]
    rest = words[words.index("-m") + 2 :]
    positional = []
    for word in rest:  # subcommands before the first option
        if word.startswith("-"):
            break
        positional.append(word)
    done = subprocess.run(
        [sys.executable, "-m", module, *positional, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    for option in (w.split("=")[0] for w in rest if w.startswith("--")):
        assert option in done.stdout, f"{command}: {option} not in its --help"


@pytest.mark.parametrize("command", [c for c in commands() if c.startswith(".venv/bin/")])
def test_every_virtualenv_tool_shown_exists(command):
    tool = shlex.split(command)[0]
    assert (REPO_ROOT / tool).is_file(), command


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@LOOPBACK_ONLY
def test_sourcing_the_stack_env_reaches_the_stack_from_a_fresh_terminal(tmp_path):
    (command,) = [c for c in re.findall(r"`(source [^`]+)`", README) if "aws" in c]
    clone = tmp_path / "clone"
    (clone / ".local").mkdir(parents=True)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    stack_env, endpoint = _stack_env(tmp_path)
    shutil.copy(stack_env, clone / ".local" / "stack.env")
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=_fresh_terminal(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Region and credentials resolve; the CLI goes to the stack's (closed) endpoint.
    assert done.returncode != 0
    assert f'Could not connect to the endpoint URL: "{endpoint}/' in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
@LOOPBACK_ONLY
def test_the_printed_dashboard_command_opens_that_workspace_from_a_fresh_terminal(tmp_path):
    """What index.html and `make demo-drift` print: `make monitoring-ui MONITORING_WORKSPACE=`."""
    import json
    import os
    import signal
    import socket
    import time
    import urllib.request
    from datetime import datetime, timezone

    from monitoring.report import monitoring_ui_hint
    from monitoring.workspace import PROJECT_NAME, EvidentlyWorkspace, WindowRun

    workspace = tmp_path / "scenario workspace"
    at = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    EvidentlyWorkspace(workspace).add_window(WindowRun("w1", at, "1", {"Records": 3.0}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**_fresh_terminal(tmp_path), "MONITORING_UI_PORT": str(port)}
    ui = subprocess.Popen(
        ["bash", "-c", monitoring_ui_hint(workspace) + " --no-print-directory"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/projects") as reply:
                    projects = json.load(reply)
                break
            except OSError:
                assert ui.poll() is None, ui.communicate()[0].decode()[-2000:]
                assert time.monotonic() < deadline, "make monitoring-ui did not answer in 120 s"
                time.sleep(0.5)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    assert [p["name"] for p in projects] == [PROJECT_NAME]
