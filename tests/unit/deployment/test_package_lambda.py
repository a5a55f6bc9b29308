"""Lambda packaging: deterministic zips, stripping, pinned requirements, the ELF audit and the
bundled libgomp (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from config.settings import REPO_ROOT
from deployment.elf_audit import audit_package, read_elf
from deployment.package_lambda import (
    FLAVOUR_COMPILED,
    FLAVOUR_LIGHTGBM,
    LIBGOMP_NAME,
    REQUIREMENTS,
    REQUIREMENTS_LIGHTGBM,
    PackageError,
    build_lambda_zip,
    check_flavour,
    copy_package,
    extract_libgomp,
    sha256_file,
    strip_unneeded,
    write_deterministic_zip,
)

ROOT = REPO_ROOT
#: botocore and the dependencies it does not share with Powertools.
BOTOCORE_DISTRIBUTIONS = ("botocore", "python-dateutil", "six", "urllib3")


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


def test_package_copy_leaves_out_the_native_sources(tmp_path):
    """The C sources of lambda_function/native/ are built into each bundle's library by
    training; the function never compiles anything, so the zip does not ship them."""
    sources = sorted((ROOT / "lambda_function" / "native").glob("*.[ch]"))
    assert sources, "lambda_function/native/ holds the scorer's C sources"
    copy_package(tmp_path)
    shipped = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")]
    assert not [n for n in shipped if n.endswith("/native") or n.endswith((".c", ".h"))]


def test_the_image_copies_only_the_modules_and_requirements():
    """The container image (lambda_function/Dockerfile) ships no native sources either."""
    copies = [
        line.split()[1]
        for line in (ROOT / "lambda_function" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    ]
    assert copies and set(copies) <= {
        "lambda_function/*.py",
        "lambda_function/requirements.txt",
    }


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "-r ")):
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


def test_requirements_are_pinned_to_the_lock_file():
    lock = json.loads((ROOT / "Pipfile.lock").read_text())["default"]
    compiled, fallback = _pins(REQUIREMENTS), _pins(REQUIREMENTS_LIGHTGBM)
    # The default (compiled) package: no LightGBM, no SciPy (nor what only LightGBM imports),
    # its own botocore (pruned by the build) and botocore's dependencies.
    assert {"numpy", "msgspec", "aws-lambda-powertools", *BOTOCORE_DISTRIBUTIONS} <= set(compiled)
    assert not {"lightgbm", "scipy", "narwhals"} & set(compiled)
    # The LightGBM flavour: the same plus LightGBM and what it needs, with the runtime's botocore.
    lightgbm = {"lightgbm", "scipy", "narwhals"}
    assert set(fallback) == set(compiled) - set(BOTOCORE_DISTRIBUTIONS) | lightgbm
    for pins in (compiled, fallback):
        assert not {"pandas", "mlflow", "scikit-learn", "boto3"} & set(pins)
        for name, version in pins.items():
            assert lock[name]["version"] == f"=={version}", name


def test_a_compiled_package_with_lightgbm_scipy_or_libgomp_is_refused(tmp_path):
    check_flavour(tmp_path, FLAVOUR_COMPILED)  # empty: fine
    for name in ("lightgbm", "scipy", f"lib/{LIBGOMP_NAME}"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(PackageError, match=f"must not contain .*{name}"):
            check_flavour(tmp_path, FLAVOUR_COMPILED)
        check_flavour(tmp_path, FLAVOUR_LIGHTGBM)  # there it belongs
        (tmp_path / name).unlink()
    with pytest.raises(PackageError, match="is not one of"):
        build_lambda_zip(tmp_path, "static")


# -- the ELF audit -------------------------------------------------------------------------------


def make_elf(
    needed: tuple[str, ...] = (),
    *,
    soname: str | None = None,
    runpath: str | None = None,
    needs: dict[str, list[str]] | None = None,
    defines: tuple[str, ...] = (),
    machine: int = 62,
) -> bytes:
    """A minimal x86_64 ELF64 shared object: .dynstr, .dynamic, .gnu.version_r/_d."""
    strtab = bytearray(b"\0")

    def string(text: str) -> int:
        offset = len(strtab)
        strtab.extend(text.encode() + b"\0")
        return offset

    tags = [(1, string(n)) for n in needed]
    if soname:
        tags.append((14, string(soname)))
    if runpath:
        tags.append((29, string(runpath)))
    dynamic = b"".join(struct.pack("<qQ", t, v) for t, v in tags + [(0, 0)])
    verneed = bytearray()
    entries = list((needs or {}).items())
    for i, (library, versions) in enumerate(entries):
        following = 16 + 16 * len(versions) if i < len(entries) - 1 else 0
        verneed += struct.pack("<HHIII", 1, len(versions), string(library), 16, following)
        for j, version in enumerate(versions):
            verneed += struct.pack("<IHHII", 0, 0, 0, string(version), 16 * (j < len(versions) - 1))
    verdef = bytearray()
    definitions = [(1, soname or "self")] + [(0, name) for name in defines]
    for i, (flags, name) in enumerate(definitions):
        following = 28 if i < len(definitions) - 1 else 0
        verdef += struct.pack("<HHHHIII", 1, flags, i + 1, 1, 0, 20, following)
        verdef += struct.pack("<II", string(name), 0)
    blobs = [(3, bytes(strtab), 0), (6, dynamic, 0), (0x6FFFFFFE, bytes(verneed), len(entries))]
    blobs.append((0x6FFFFFFD, bytes(verdef), len(definitions)))
    body, headers, offset = bytearray(), [struct.pack("<IIQQQQIIQQ", *([0] * 10))], 64
    for sh_type, blob, count in blobs:
        headers.append(
            struct.pack("<IIQQQQIIQQ", 0, sh_type, 0, 0, offset, len(blob), 1, count, 8, 0)
        )
        body += blob
        offset += len(blob)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 3, machine, 1, 0, 0, offset, 0, 64, 0, 0, 64, len(headers), 0
    )
    return header + bytes(body) + b"".join(headers)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


LIGHTGBM_LIKE = dict(
    needed=("libgomp.so.1", "libstdc++.so.6", "libc.so.6"),
    needs={"libgomp.so.1": ["GOMP_4.5", "OMP_1.0"], "libc.so.6": ["GLIBC_2.17"]},
)


def test_reader_reads_dynamic_section_and_versions():
    data = make_elf(
        ("libfoo.so.1", "libc.so.6"),
        soname="libbar.so",
        runpath="$ORIGIN/../x.libs",
        needs={"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.17"]},
        defines=("BAR_1.0",),
    )
    info = read_elf(data)
    assert info.needed == ["libfoo.so.1", "libc.so.6"] and info.soname == "libbar.so"
    assert info.search_paths == ["$ORIGIN/../x.libs"]
    assert info.version_needs == {"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.17"]}
    assert info.version_defs == {"BAR_1.0"}


def test_reader_on_a_real_shared_object_matches_readelf():
    lightgbm = ROOT / ".venv" / "lib" / "python3.12" / "site-packages" / "lightgbm" / "lib"
    library = lightgbm / "lib_lightgbm.so"
    if not library.exists() or not shutil.which("readelf"):
        pytest.skip("needs the venv's lightgbm and binutils' readelf")
    info = read_elf(library.read_bytes())
    out = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True).stdout
    assert info.needed == re.findall(r"Shared library: \[(.+?)\]", out)
    assert "libgomp.so.1" in info.needed and "GOMP_4.0" in info.version_needs["libgomp.so.1"]


def test_audit_fails_on_a_library_neither_bundled_nor_on_the_runtime(tmp_path):
    write(tmp_path / "lightgbm" / "lib" / "lib_lightgbm.so", make_elf(**LIGHTGBM_LIKE))
    report = audit_package(tmp_path)
    assert not report.ok and report.objects == 1
    assert (
        "lightgbm/lib/lib_lightgbm.so: needs libgomp.so.1, which is neither" in report.problems[0]
    )
    assert "FAIL" in report.summary()


def test_audit_accepts_a_bundled_library_in_lib_that_defines_the_needed_versions(tmp_path):
    write(tmp_path / "lightgbm" / "lib" / "lib_lightgbm.so", make_elf(**LIGHTGBM_LIKE))
    gomp = make_elf(("libc.so.6",), soname="libgomp.so.1", defines=("GOMP_4.5", "OMP_1.0"))
    write(tmp_path / "lib" / "libgomp.so.1", gomp)
    report = audit_package(tmp_path)
    assert report.ok, report.problems
    assert report.bundled == {"libgomp.so.1": "lib/libgomp.so.1"}
    assert report.max_glibc == "GLIBC_2.17" and report.summary().endswith("audit: OK")


def test_audit_fails_when_the_bundled_library_lacks_a_needed_version(tmp_path):
    write(tmp_path / "lightgbm" / "lib" / "lib_lightgbm.so", make_elf(**LIGHTGBM_LIKE))
    write(tmp_path / "lib" / "libgomp.so.1", make_elf(defines=("OMP_1.0",)))
    (problem,) = audit_package(tmp_path).problems
    assert "needs GOMP_4.5 from libgomp.so.1" in problem


def test_audit_resolves_origin_runpath_and_wheel_libs_dirs(tmp_path):
    write(tmp_path / "numpy.libs" / "libopenblas-ab.so", make_elf(("libm.so.6",)))
    write(tmp_path / "pkg.libs" / "libgfortran-cd.so.5", make_elf())
    ext = make_elf(("libopenblas-ab.so",), runpath="$ORIGIN/../../numpy.libs")
    write(tmp_path / "numpy" / "core" / "_multiarray.so", ext)
    write(tmp_path / "other" / "_ext.so", make_elf(("libgfortran-cd.so.5",)))
    report = audit_package(tmp_path)
    assert report.ok, report.problems
    assert report.bundled["libopenblas-ab.so"] == "numpy.libs/libopenblas-ab.so"


@pytest.mark.parametrize(
    "library, version, refused",
    [
        ("libc.so.6", "GLIBC_2.34", False),
        ("libc.so.6", "GLIBC_2.35", True),
        ("libm.so.6", "GLIBC_2.38", True),
        ("libstdc++.so.6", "GLIBCXX_3.4.29", False),
        ("libstdc++.so.6", "GLIBCXX_3.4.30", True),
    ],
)
def test_audit_refuses_symbol_versions_newer_than_the_runtime(tmp_path, library, version, refused):
    write(tmp_path / "ext.so", make_elf((library,), needs={library: [version]}))
    report = audit_package(tmp_path)
    assert report.ok is not refused, report.problems
    if refused:
        assert f"requires {version} from {library}, newer than" in report.problems[0]


def test_audit_fails_closed_on_foreign_or_broken_objects(tmp_path):
    write(tmp_path / "arm.so", make_elf(machine=183))  # aarch64
    write(tmp_path / "cut.so", make_elf(("libc.so.6",))[:80])
    write(tmp_path / "notes.txt", b"not an ELF")
    problems = sorted(audit_package(tmp_path).problems)
    assert len(problems) == 2
    assert problems[0].startswith("arm.so: machine 183 is not x86_64")
    assert problems[1].startswith("cut.so: malformed ELF object")


def _wheel_with(tmp_path: Path, library: bytes) -> Path:
    wheel = tmp_path / "scikit_learn-1.9.1-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("sklearn/__init__.py", "")
        archive.writestr("scikit_learn.libs/libgomp-e985bcbb.so.1.0.0", library)
    return wheel


def test_libgomp_is_extracted_only_with_the_pinned_sha_and_an_old_enough_glibc(tmp_path):
    good = make_elf(("libc.so.6",), needs={"libc.so.6": ["GLIBC_2.17"]}, defines=("GOMP_4.5",))
    wheel = _wheel_with(tmp_path, good)
    target = tmp_path / "pkg" / "lib" / "libgomp.so.1"
    digest = hashlib.sha256(good).hexdigest()
    assert extract_libgomp(wheel, target, expected_sha256=digest) == digest
    assert target.read_bytes() == good and not target.is_symlink()
    with pytest.raises(PackageError, match="expected a43904e4"):
        extract_libgomp(wheel, tmp_path / "other.so")  # the real pin: not this file
    too_new = make_elf(("libc.so.6",), needs={"libc.so.6": ["GLIBC_2.38"]})
    with pytest.raises(PackageError, match="GLIBC_2.38"):
        extract_libgomp(
            _wheel_with(tmp_path, too_new),
            tmp_path / "x.so",
            expected_sha256=hashlib.sha256(too_new).hexdigest(),
        )
