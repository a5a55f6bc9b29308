"""Background processes of the embedded stack: started detached, their logs read back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from config.settings import REPO_ROOT


def spawn_module(
    module: str, args: Sequence[str], *, env: Mapping[str, str], log_path: Path, append: bool
) -> subprocess.Popen:
    """``python -m module args`` from the repository, its output into ``log_path``.

    A session of its own: it outlives the command that started it (``make up``), and is
    stopped as a process group with whatever it starts.
    """
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log ("" when there is none yet), for error messages."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
