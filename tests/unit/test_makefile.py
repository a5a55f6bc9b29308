"""`make help` lists every documented target (the README's target table relies on it)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from config.settings import REPO_ROOT

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
