"""Example records shared by the tests (one copy, loaded from tests/fixtures/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def example_observation() -> dict[str, Any]:
    """A fresh copy of the input contract's example record (README, Contracts), which is valid."""
    return json.loads((FIXTURES / "observation.json").read_text())
