"""`make help` lists every documented target (the README's target table relies on it)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from config.settings import REPO_ROOT
from tests.fakes import LOOPBACK_ONLY

ROOT = REPO_ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_help_lists_every_documented_target():
    documented = re.findall(r"^([A-Za-z0-9_.-]+):[^\n]*## ", (ROOT / "Makefile").read_text(), re.M)
    assert "bench-e2e" in documented
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    listed = re.findall(r"^ +(?:\x1b\[[0-9;]*m)?([A-Za-z0-9_.-]+)", shown, re.M)
    assert sorted(listed) == sorted(documented)


def _fresh_terminal(tmp_path) -> dict[str, str]:
    """The environment of a new terminal: no AWS variables, no ~/.aws, no virtualenv on PATH."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp_path / "home")
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    env["AWS_MAX_ATTEMPTS"] = "1"  # fail fast on the closed port below; resolves nothing else
    return env


def _stack_env(tmp_path) -> tuple[str, str]:
    """A stack.env like `make up` + `make deploy` write, its endpoint a closed loopback port."""
    import socket

    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    path = tmp_path / "stack.env"
    path.write_text(
        f"export AWS_TARGET=moto\nexport AWS_ENDPOINT_URL={endpoint}\n"
        "export AWS_DEFAULT_REGION=us-east-1\nexport AWS_REGION=us-east-1\n"
        "export AWS_ACCESS_KEY_ID=testing\nexport AWS_SECRET_ACCESS_KEY=testing\n"
        "export MODELS_BUCKET=mushroom-local-models\n"
    )
    return str(path), endpoint


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
@LOOPBACK_ONLY
def test_every_printed_hint_works_in_a_fresh_terminal(tmp_path):
    import shlex
    import sys

    stack_env, endpoint = _stack_env(tmp_path)
    env = _fresh_terminal(tmp_path)
    hints = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--hints"],
        cwd=ROOT,
        env={**env, "MUSHROOM_LOCAL_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    targets = set(
        re.findall(r"^([A-Za-z0-9_.-]+):[^\n]*## ", (ROOT / "Makefile").read_text(), re.M)
    )
    aws_hints = [h for h in hints if h.startswith("make aws ")]
    assert len(aws_hints) == 3 and "s3://mushroom-local-models" in aws_hints[2]
    for hint in hints:
        words = shlex.split(hint.split("#")[0])
        assert words[0] == "make" and words[1] in targets, hint
    for hint in aws_hints:
        # Run as printed (the stack file given explicitly, so the developer's is not used):
        # region and credentials resolve, and the CLI goes to the stack's endpoint.
        done = subprocess.run(
            [*shlex.split(hint), f"STACK_ENV={stack_env}", "--no-print-directory"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert f'Could not connect to the endpoint URL: "{endpoint}/' in done.stderr, done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_aws_without_a_stack_says_what_to_start(tmp_path):
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "aws",
            "ARGS=kinesis list-streams",
            f"STACK_ENV={tmp_path / 'none.env'}",
        ],
        cwd=ROOT,
        env=_fresh_terminal(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "start a stack first (make up, make deploy)" in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_the_first_setup_shows_progress_while_pipenv_syncs(tmp_path):
    import sys

    # A clean clone's setup: a python3 whose `-m pipenv sync` takes a few seconds and installs
    # one package; everything else is the real interpreter.
    work = tmp_path / "clone"
    work.mkdir()
    shutil.copy(ROOT / "Makefile", work)
    shutil.copy(ROOT / "Pipfile.lock", work)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(
        "#!/bin/bash\n"
        'if [ "$1 $2 $3" = "-m pipenv --version" ]; then echo "pipenv, version test"; exit 0; fi\n'
        'if [ "$1 $2 $3" = "-m pipenv sync" ]; then sleep 3;'
        " mkdir -p .venv/lib/python3.12/site-packages/one-1.0.dist-info; exit 0; fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    env = {**_fresh_terminal(tmp_path), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["make", "--no-print-directory", "setup", "SETUP_PROGRESS_S=1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # Progress lines only: not the recipe's 20 lines of shell echoed before them.
    assert "start=$(date" not in done.stdout and "kill -0" not in done.stdout, done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("[setup +")]
    assert lines == done.stdout.splitlines(), done.stdout
    assert re.match(r"\[setup \+\d+s\] pipenv sync --dev: \d+ locked packages", lines[0]), lines
    assert any(re.search(r"\d+s\] [01] of \d+ packages installed$", line) for line in lines)
    assert lines[-1].endswith("environment ready")
    assert list((work / ".venv").glob(".synced-*"))


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_test_sets_up_chromium_before_pytest():
    """``make test`` runs the chromium step first; it installs Debian's package as root only."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    install = dry.index("apt-get install -y -qq chromium")
    assert install < dry.index("-m pytest tests")
    assert "command -v chromium" in dry and '"$(id -u)" = 0' in dry and "apt-get" in dry


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_invoke_calls_the_alias_live_unless_told_otherwise(tmp_path):
    def dry_run(*overrides: str) -> str:
        return subprocess.run(
            ["make", "--no-print-directory", "-n", "invoke", f"STACK_ENV={tmp_path}/none.env"]
            + list(overrides),
            cwd=ROOT,
            env=_fresh_terminal(tmp_path),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    assert "-m scripts.invoke --event tests/fixtures/kinesis_event.json" in dry_run()
    assert "--qualifier 'live'" in dry_run()
    assert "--qualifier '3'" in dry_run("QUALIFIER=3")
