"""The files that describe the local stack: ``.local/stack.env`` and ``.local/emulator.json``.

``make up`` (emulation) records the running emulator; ``make deploy`` (deployment) adds the
Terraform outputs to ``stack.env`` as ``export KEY=value`` lines, which the Makefile includes and
bash can ``source``. Both sides read and write them through this module only.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from config.settings import LOCAL_DIR

STACK_ENV_NAME = "stack.env"
STATE_NAME = "emulator.json"
PID_NAME = "moto.pid"
# The lines `make up` owns in stack.env (deploy adds the Terraform outputs after them).
EMULATOR_KEYS = (
    "AWS_TARGET",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@+=,%-]*$")
_EXPORT_LINE = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class EmulatorState:
    """What `up` recorded about the running emulator."""

    target: str
    endpoint: str
    pid: int | None = None
    port: int | None = None


def stack_env_path(local_dir: Path = LOCAL_DIR) -> Path:
    """Path of the shared `export KEY=value` file."""
    return local_dir / STACK_ENV_NAME


def read_stack_env(path: Path) -> dict[str, str]:
    """Return the variables of a stack.env file (empty when it does not exist)."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _EXPORT_LINE.match(line)
        if match:
            raw = match.group(2).strip()
            values[match.group(1)] = shlex.split(raw)[0] if raw.startswith(("'", '"')) else raw
    return values


def _format_value(value: str) -> str:
    # Plain values keep make's `include` and bash's `source` reading the same string.
    return value if _SAFE_VALUE.match(value) else shlex.quote(value)


def update_stack_env(
    path: Path, updates: Mapping[str, str] | None = None, remove: Iterable[str] = ()
) -> dict[str, str]:
    """Set `updates` and drop `remove` in a stack.env file, keeping every other line's value.

    Emulator lines stay first; the file is deleted when nothing is left. Returns the new content.
    """
    values = read_stack_env(path)
    for key in remove:
        values.pop(key, None)
    values.update({key: str(value) for key, value in (updates or {}).items()})
    if not values:
        path.unlink(missing_ok=True)
        return values
    ordered = [k for k in EMULATOR_KEYS if k in values] + sorted(
        k for k in values if k not in EMULATOR_KEYS
    )
    lines = ["# Written by make up / make deploy (emulation/emulator.py, deployment/deploy.py)."]
    lines += [f"export {key}={_format_value(values[key])}" for key in ordered]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return values


def read_state(local_dir: Path = LOCAL_DIR) -> EmulatorState | None:
    """The running emulator as recorded by `up`, or None."""
    path = local_dir / STATE_NAME
    if not path.exists():
        return None
    try:
        return EmulatorState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def write_state(state: EmulatorState, local_dir: Path) -> None:
    local_dir.mkdir(parents=True, exist_ok=True)
    (local_dir / STATE_NAME).write_text(json.dumps(asdict(state), indent=2) + "\n")
    if state.pid is not None:
        (local_dir / PID_NAME).write_text(f"{state.pid}\n")


def clear_state(local_dir: Path) -> None:
    (local_dir / STATE_NAME).unlink(missing_ok=True)
    (local_dir / PID_NAME).unlink(missing_ok=True)
