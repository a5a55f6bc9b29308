"""The README's `mlflow models serve` snippet, run as printed in a fresh terminal.

After `make demo` the champion's artifacts are in the emulator's S3. The snippet is run from a
scratch "repository root" (its own `.local/` with a moto server's `stack.env` and an MLflow
store, and `.venv` linked to the project's), in a terminal with no AWS variables and no
virtualenv on PATH. The model is the real pyfunc around a bundle trained on the tiny dataset.
Only the port differs from the README (a free one instead of 5001).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from config.settings import REPO_ROOT, Settings
from config.stack_env import read_stack_env
from emulation.emulator import start_emulator, stop_emulator
from tests.conftest import make_tiny_dataset
from tests.integration.lambda_stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

MLFLOW_BUCKET = "readme-mlflow"


def readme_block(marker: str) -> list[str]:
    """The lines of the README's ```bash block that contains ``marker``."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block.strip().splitlines()


def fresh_terminal(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MLFLOW_", "VIRTUAL_ENV", "MUSHROOM_"))
    }
    env["HOME"] = str(home)
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    return env


def test_the_snippet_names_the_stack_env_before_mlflow_needs_it():
    lines = readme_block("mlflow models serve")
    first_mlflow = next(i for i, line in enumerate(lines) if "mlflow" in line.split("#")[0])
    sourced = [i for i, line in enumerate(lines) if line.startswith("source .local/stack.env")]
    assert sourced and sourced[0] < first_mlflow, lines


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory):
    """A repository root with a moto stack, an S3 MLflow bucket and a registered champion."""
    root = tmp_path_factory.mktemp("clone")
    (root / ".venv").symlink_to(REPO_ROOT / ".venv")
    local = root / ".local"
    saved = dict(os.environ)
    try:
        start_emulator("moto", local_dir=local)
        stack = read_stack_env(local / "stack.env")
        os.environ.update(stack)
        boto3.client("s3").create_bucket(Bucket=MLFLOW_BUCKET)
        from training import pipeline
        from training import train as train_mod

        dataset = make_tiny_dataset()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline.data_mod, "load_dataset", lambda _settings: dataset)
            patch.setattr(train_mod, "NUM_BOOST_ROUND", 10)
            settings = Settings.from_env(
                {
                    **os.environ,
                    "MUSHROOM_REPO_ROOT": str(root),
                    "MUSHROOM_LOCAL_DIR": str(local),
                    "MLFLOW_TRACKING_URI": f"sqlite:///{local / 'mlflow' / 'mlflow.db'}",
                    "MLFLOW_BUCKET": MLFLOW_BUCKET,
                }
            )
            assert settings.mlflow_artifact_location.startswith(f"s3://{MLFLOW_BUCKET}/")
            result = pipeline.run_training(settings, reason="README snippet test")
        assert result.promoted
        yield root
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop_emulator(local)


def test_mlflow_models_serve_as_printed_in_a_fresh_terminal(clone: Path, tmp_path: Path):
    port = str(free_port())
    lines = [line.replace("5001", port) for line in readme_block("mlflow models serve")]
    serve_at = next(i for i, line in enumerate(lines) if line.startswith("mlflow models serve"))
    setup, serve = lines[:serve_at], lines[serve_at]
    curl = next(line for line in lines if line.startswith("curl "))
    env = fresh_terminal(tmp_path)

    def bash(script: str, **kwargs):
        return subprocess.run(
            ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, **kwargs
        )

    # Without the stack's environment the artifacts cannot be read (what the README warns).
    bare = bash("\n".join(line for line in setup if not line.startswith("source ")), timeout=300)
    assert bare.returncode != 0 and "NoCredentialsError" in bare.stderr, bare.stderr[-2000:]

    loaded = bash("set -e\n" + "\n".join(setup), timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "mushroom_id" in loaded.stdout and "p_poisonous" in loaded.stdout

    server = subprocess.Popen(
        ["bash", "-c", "\n".join([*setup[:-1], "exec " + serve])],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            answer = bash(curl, timeout=30)
            if answer.returncode == 0 and answer.stdout.startswith("{"):
                break
            assert server.poll() is None, server.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve did not answer in 240 s"
            time.sleep(1)
        import json

        (prediction,) = json.loads(answer.stdout)["predictions"]
        assert prediction["mushroom_id"] == "obs-1" and prediction["status"] == "scored"
        assert prediction["verdict"] in ("edible", "poisonous", "unknown")
        # A row that breaks the contract: rejected, p_poisonous null in the reply (README).
        bad = curl.replace('"stem_width": 17.09', '"stem_width": -1')
        assert bad != curl
        (rejected,) = json.loads(bash(bad, timeout=30).stdout)["predictions"]
        assert rejected["status"] == "rejected" and rejected["p_poisonous"] is None
        assert "stem_width" in rejected["errors"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert shlex.split(serve)[:3] == ["mlflow", "models", "serve"]
