"""Lambda packaging: deterministic zips, stripping, pinned requirements (no network)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from scripts.package_lambda import (
    REQUIREMENTS,
    copy_package,
    sha256_file,
    strip_unneeded,
    write_deterministic_zip,
)

ROOT = Path(__file__).resolve().parents[2]


def make_tree(root: Path) -> None:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\0")
    (root / "numpy" / "_core" / "tests").mkdir(parents=True)
    (root / "numpy" / "_core" / "tests" / "test_a.py").write_text("")
    (root / "numpy" / "testing").mkdir()
    (root / "numpy" / "testing" / "__init__.py").write_text("")
    (root / "other" / "tests").mkdir(parents=True)
    (root / "other" / "tests" / "keep.py").write_text("")
    (root / "bin").mkdir()
    (root / "bin" / "f2py").write_text("#!/bin/sh\n")
    tool = root / "pkg" / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)


def test_zip_is_byte_identical_whatever_the_timestamps(tmp_path):
    for name in ("a", "b"):
        make_tree(tmp_path / name)
    os.utime(tmp_path / "b" / "pkg" / "__init__.py", (1, 1))
    first = write_deterministic_zip(tmp_path / "a", tmp_path / "a.zip")
    second = write_deterministic_zip(tmp_path / "b", tmp_path / "b.zip")
    assert sha256_file(first) == sha256_file(second)
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        mode = archive.getinfo("pkg/tool.sh").external_attr >> 16
        assert mode & 0o777 == 0o755
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_strip_removes_caches_scripts_and_numpy_tests_only(tmp_path):
    make_tree(tmp_path)
    assert strip_unneeded(tmp_path) > 0
    remaining = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert remaining == {
        "pkg/__init__.py",
        "pkg/tool.sh",
        "numpy/testing/__init__.py",
        "other/tests/keep.py",
    }


def test_package_copy_has_only_modules(tmp_path):
    copy_package(tmp_path)
    files = sorted(p.name for p in (tmp_path / "lambda_function").iterdir())
    assert "handler.py" in files and "schema.py" in files
    assert all(name.endswith(".py") for name in files)


def test_requirements_are_pinned_to_the_lock_file():
    lock = json.loads((ROOT / "Pipfile.lock").read_text())["default"]
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    assert {"lightgbm", "numpy", "scipy", "msgspec", "aws-lambda-powertools"} <= set(pins)
    assert not {"pandas", "mlflow", "scikit-learn", "boto3"} & set(pins)
    for name, version in pins.items():
        assert lock[name]["version"] == f"=={version}", name
