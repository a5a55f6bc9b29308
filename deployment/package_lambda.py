"""Build the Lambda zip (``make package``): cp312 x86_64 wheels + the lambda_function package.

Two flavours (``--flavour``):

- ``compiled`` (the default, what ``make package``, ``make deploy``, the demo and the tests
  deploy): ``lambda_function/requirements.txt``, no LightGBM, no SciPy, no libgomp. It serves
  bundles that carry a compiled predictor for ``linux-x86_64`` (every bundle ``make train``
  exports on Linux); ``deployment/rollout.py`` refuses to roll out any other bundle to it.
- ``lightgbm``: ``requirements-lightgbm.txt`` adds LightGBM (and SciPy, and libgomp, below), the
  fallback for bundles without a compiled predictor for the Lambda's platform.

The function learns which one it runs from ``SCORER_PACKAGE`` (Terraform variable
``scorer_package``); the build refuses a ``compiled`` package that contains LightGBM or SciPy.

For the cold start, the ``compiled`` package also carries (measured in ``make bench``):

- its own botocore, with the data of the services the function calls only
  (``BOTOCORE_SERVICES``; ``endpoints.json`` keeps every partition, with those services only),
  so creating a client neither lists 445 service directories nor parses 1.25 MB of JSON;
- the bytecode of every module (``compile_bytecode``): /var/task is read-only, so Python would
  otherwise compile every module it imports from source, on every cold start.

The ``lightgbm`` flavour has neither: its zip is at the 50 MB direct-upload limit already.

The zip is deterministic: the same requirements and sources give the same bytes (sorted entries,
fixed timestamps and permissions), so its SHA-256 names it: ``build/mushroom-scorer-<sha12>.zip``.
Wheels come from PyPI through pip (cached in ``.local/pip-cache``) for the Lambda platform, not
this machine's: ``--platform manylinux_2_x_x86_64 --python-version 3.12 --implementation cp
--only-binary=:all:``. The python3.12 runtime is Amazon Linux 2023 (glibc 2.34).

For the ``lightgbm`` flavour: LightGBM's ``lib_lightgbm.so`` needs ``libgomp.so.1``, which its
wheel does not bundle and the runtime does not ship. The build takes the manylinux libgomp
that scikit-learn's wheel vendors (``scikit_learn.libs/libgomp-<hash>.so.1.0.0``, pinned by
version and SHA-256) and puts it in the zip as ``lib/libgomp.so.1`` (Lambda puts
``/var/task/lib`` on ``LD_LIBRARY_PATH``). Then every ELF object in the package is audited
(``deployment/elf_audit.py``) and the build fails on a library the runtime would not find or a
symbol version it does not have.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

from config.settings import LOCAL_DIR, REPO_ROOT
from deployment.bytecode import compile_tree_isolated
from deployment.elf_audit import PACKAGE_LIB_DIR, AuditReport, audit_package, read_elf, too_new

ROOT = REPO_ROOT
PACKAGE_DIR = ROOT / "lambda_function"
REQUIREMENTS = PACKAGE_DIR / "requirements.txt"
REQUIREMENTS_LIGHTGBM = PACKAGE_DIR / "requirements-lightgbm.txt"
FLAVOUR_COMPILED = "compiled"
FLAVOUR_LIGHTGBM = "lightgbm"
FLAVOURS = {FLAVOUR_COMPILED: REQUIREMENTS, FLAVOUR_LIGHTGBM: REQUIREMENTS_LIGHTGBM}
#: What a compiled-flavour package must not contain (top-level directories of the staging).
NOT_IN_COMPILED = ("lightgbm", "scipy", "scipy.libs")
PIP_CACHE = LOCAL_DIR / "pip-cache"
ZIP_PREFIX = "mushroom-scorer"
PYTHON_VERSION = "3.12"
# pip does not expand manylinux_2_X tags to older glibc versions by itself: list every tag the
# runtime's glibc 2.34 supports (pip picks the most specific wheel available).
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
# Parts of the installed wheels the function never loads. Only the test suites of numpy and
# scipy are dropped (their import machinery does not need them); everything else is kept.
STRIP_DIRS = {"__pycache__"}
STRIP_TEST_DIRS_UNDER = ("numpy", "scipy")
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
#: Where Lambda unpacks the zip: the path the compiled modules name (tracebacks, co_filename).
LAMBDA_TASK_ROOT = "/var/task"
#: The AWS services the function creates clients for (``aws.client(...)`` in lambda_function/:
#: Kinesis for the verdicts, S3 for bundles; metrics go to stdout as EMF, no CloudWatch client).
#: The package's botocore keeps the data of these only.
BOTOCORE_SERVICES = ("kinesis", "s3")
BOTOCORE_DATA = Path("botocore") / "data"
# OpenMP runtime for lib_lightgbm.so: the libgomp (GCC's, manylinux_2_28, glibc >= 2.17 only)
# that this scikit-learn wheel vendors, checked byte for byte.
LIBGOMP_WHEEL = "scikit-learn==1.9.1"
LIBGOMP_MEMBER_PREFIX = "scikit_learn.libs/libgomp-"
LIBGOMP_SHA256 = "a43904e4fa297301d4640dc1bb3c8a3480b406f99e498eba9b1914b68aab604a"
LIBGOMP_NAME = "libgomp.so.1"


class PackageError(RuntimeError):
    """The package cannot be built, or would not load on the Lambda runtime."""


def _pip_platform_args() -> list[str]:
    args = [
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--cache-dir",
        str(PIP_CACHE),
    ]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def install_wheels(target: Path, specifiers: list[str], compile_bytecode: bool = False) -> None:
    """pip-install ``specifiers`` (pip arguments) for the Lambda platform into ``target``."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += [] if compile_bytecode else ["--no-compile"]
    command += ["--target", str(target), *_pip_platform_args()]
    subprocess.run(command + specifiers, check=True)


def install_requirements(staging: Path, requirements: Path = REQUIREMENTS) -> None:
    """pip-install the requirements for the Lambda platform into ``staging``."""
    install_wheels(staging, ["-r", str(requirements)])


def extract_libgomp(wheel: Path, destination: Path, expected_sha256: str = LIBGOMP_SHA256) -> str:
    """Copy the wheel's vendored libgomp to ``destination`` after checking its SHA-256 and
    that it needs no glibc symbol version newer than the runtime's; returns the SHA-256."""
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.startswith(LIBGOMP_MEMBER_PREFIX)]
        if len(members) != 1:
            raise PackageError(
                f"{wheel.name}: expected one {LIBGOMP_MEMBER_PREFIX}* file, got {members}"
            )
        data = archive.read(members[0])
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise PackageError(
            f"{wheel.name}:{members[0]} has SHA-256 {digest}, expected {expected_sha256}"
        )
    info = read_elf(data)
    newer = sorted(v for vs in info.version_needs.values() for v in vs if too_new(v))
    if newer:
        raise PackageError(f"{members[0]} requires {newer}, newer than the python3.12 runtime")
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)  # a plain file: the zip keeps no symlinks
    destination.chmod(0o755)
    return digest


def bundle_libgomp(staging: Path) -> str:
    """Download the pinned wheel (through pip's cache) and bundle ``lib/libgomp.so.1``."""
    with tempfile.TemporaryDirectory(prefix="libgomp-wheel-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet"]
        command += ["--disable-pip-version-check", "--no-deps", "--dest", tmp]
        subprocess.run(command + _pip_platform_args() + [LIBGOMP_WHEEL], check=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise PackageError(f"pip download {LIBGOMP_WHEEL} gave {wheels}")
        return extract_libgomp(wheels[0], staging / PACKAGE_LIB_DIR / LIBGOMP_NAME)


def audit(staging: Path) -> AuditReport:
    """Audit the staged package; print the report and raise PackageError when it fails."""
    report = audit_package(staging)
    print(report.summary())
    if not report.ok:
        raise PackageError(
            f"the package would not load on the python3.12 runtime: {len(report.problems)} "
            "problem(s) above"
        )
    return report


def check_flavour(staging: Path, flavour: str) -> None:
    """PackageError when a ``compiled`` package holds LightGBM, SciPy or libgomp after all."""
    if flavour != FLAVOUR_COMPILED:
        return
    found = [name for name in NOT_IN_COMPILED if (staging / name).exists()]
    if (staging / PACKAGE_LIB_DIR / LIBGOMP_NAME).exists():
        found.append(f"{PACKAGE_LIB_DIR}/{LIBGOMP_NAME}")
    if found:
        raise PackageError(
            f"the {FLAVOUR_COMPILED} package must not contain {', '.join(found)} "
            f"(a requirement pulled them in: check {REQUIREMENTS.name})"
        )


def copy_package(staging: Path, package_dir: Path = PACKAGE_DIR) -> None:
    """Copy the function's own modules (``*.py`` only: no tests, caches or build files)."""
    target = staging / package_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(package_dir.glob("*.py")):
        shutil.copyfile(source, target / source.name)


def strip_unneeded(staging: Path) -> int:
    """Remove caches, console scripts and numpy/scipy test suites; returns bytes removed."""
    removed = 0
    doomed: list[Path] = []
    if (staging / "bin").is_dir():
        doomed.append(staging / "bin")
    for path in staging.rglob("*"):
        if not path.is_dir():
            if path.suffix in (".pyc", ".pyo"):
                doomed.append(path)
            continue
        relative = path.relative_to(staging).parts
        if path.name in STRIP_DIRS or (
            path.name == "tests" and relative[0] in STRIP_TEST_DIRS_UNDER
        ):
            doomed.append(path)
    for path in doomed:
        if not path.exists():
            continue  # inside a directory removed already
        if path.is_dir():
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        else:
            removed += path.stat().st_size
            path.unlink()
    return removed


def compile_bytecode(staging: Path, task_root: str = LAMBDA_TASK_ROOT) -> int:
    """Write ``__pycache__/*.cpython-312.pyc`` next to every module; returns how many.

    /var/task is read-only, so without them every cold start compiles every module it imports
    from source. Unchecked-hash pycs: no timestamps (the zip's are fixed), and the import
    does not stat or hash the source. Each names its module by its path under ``task_root``.
    Compiled in a fresh interpreter of fixed state (``deployment/bytecode.py``): in this
    process, the bytes would depend on what the command that builds imported before.
    """
    try:
        count, failures = compile_tree_isolated(staging, task_root)
    except RuntimeError as exc:
        raise PackageError(str(exc)) from exc
    if failures:
        raise PackageError(f"{len(failures)} module(s) do not compile: {'; '.join(failures)}")
    return count


def prune_botocore_data(data_dir: Path, services: Iterable[str] = BOTOCORE_SERVICES) -> int:
    """Keep only ``services`` among botocore's service models, and only their entries in each
    partition of ``endpoints.json``; returns the bytes removed.

    Creating a client lists every service directory (445) and parses all of endpoints.json
    (1.25 MB); with two services left both are cheap. Every partition (aws, aws-cn, aws-us-gov,
    ...) and the shared files (partitions.json, _retry.json, ...) are kept as they are.
    """
    keep = set(services)
    missing = sorted(name for name in keep if not (data_dir / name).is_dir())
    if missing:
        raise PackageError(f"botocore has no data for {', '.join(missing)} in {data_dir}")
    removed = 0
    for path in sorted(data_dir.iterdir()):
        if path.is_dir() and path.name not in keep:
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
    endpoints_file = data_dir / "endpoints.json"
    before = endpoints_file.stat().st_size
    endpoints = json.loads(endpoints_file.read_text())
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: entry for name, entry in partition["services"].items() if name in keep
        }
    endpoints_file.write_text(json.dumps(endpoints, separators=(",", ":")))
    return removed + before - endpoints_file.stat().st_size


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if path.is_file() and not path.is_symlink():
            yield path


def write_deterministic_zip(root: Path, destination: Path) -> Path:
    """Zip every file under ``root``: sorted names, fixed dates and modes, deflate level 9."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in _files(root):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=FIXED_DATE)
            executable = os.access(path, os.X_OK)
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever machine builds it
            with path.open("rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=9)
    return destination


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_size(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def inputs_digest(flavour: str = FLAVOUR_COMPILED) -> str:
    """SHA-256 of what a package is built from: requirements, the function's modules, this
    builder and its audit, the Python version. The same digest gives the same package."""
    digest = hashlib.sha256(f"{flavour} {sys.version}".encode())
    builder = [
        Path(__file__),
        *(Path(__file__).with_name(n) for n in ("elf_audit.py", "bytecode.py")),
    ]
    for path in [REQUIREMENTS, FLAVOURS[flavour], *builder, *sorted(PACKAGE_DIR.glob("*.py"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_package_dir(staging: Path, flavour: str = FLAVOUR_COMPILED) -> int:
    """Build the unzipped package of ``flavour`` in ``staging`` (emptied first), checked and
    audited; returns the bytes stripped."""
    if flavour not in FLAVOURS:
        raise PackageError(f"flavour {flavour!r} is not one of {', '.join(FLAVOURS)}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    install_requirements(staging, FLAVOURS[flavour])
    copy_package(staging)
    stripped = strip_unneeded(staging)
    if flavour == FLAVOUR_LIGHTGBM:
        libgomp_sha256 = bundle_libgomp(staging)
        print(f"{PACKAGE_LIB_DIR}/{LIBGOMP_NAME} from {LIBGOMP_WHEEL}  sha256 {libgomp_sha256}")
    else:  # the lightgbm flavour stays under 50 MB zipped: runtime botocore, no bytecode
        stripped += prune_botocore_data(staging / BOTOCORE_DATA)
    check_flavour(staging, flavour)
    audit(staging)
    if flavour == FLAVOUR_COMPILED:
        modules = compile_bytecode(staging)
        print(f"bytecode: {modules} modules ({LAMBDA_TASK_ROOT} paths, unchecked-hash pyc)")
    return stripped


def build_lambda_zip(output_dir: Path = Path("build"), flavour: str = FLAVOUR_COMPILED) -> Path:
    """Build ``<output_dir>/mushroom-scorer-<sha12>.zip`` of ``flavour``; return its path."""
    output_dir = Path(output_dir)
    staging = output_dir / "lambda-staging"
    stripped = build_package_dir(staging, flavour)
    unzipped = tree_size(_files(staging))

    temporary = output_dir / f"{ZIP_PREFIX}.zip.partial"
    write_deterministic_zip(staging, temporary)
    digest = sha256_file(temporary)
    final = output_dir / f"{ZIP_PREFIX}-{digest[:12]}.zip"
    for stale in output_dir.glob(f"{ZIP_PREFIX}-*.zip"):
        if stale != final:
            stale.unlink()  # one zip in build/: the current one
    temporary.replace(final)
    zipped = final.stat().st_size
    print(f"{final}  ({flavour} flavour)  sha256 {digest}")
    print(
        f"zipped {zipped / 1e6:.1f} MB, unzipped {unzipped / 1e6:.1f} MB "
        f"(stripped {stripped / 1e6:.1f} MB; Lambda limits: 50 MB direct upload, 250 MB unzipped)"
    )
    if unzipped > 250 * 1024 * 1024:
        raise SystemExit(f"unzipped size {unzipped} exceeds Lambda's 250 MB limit")
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "build")
    parser.add_argument(
        "--flavour",
        choices=sorted(FLAVOURS),
        default=FLAVOUR_COMPILED,
        help="compiled: no LightGBM (serves bundles with a compiled predictor; the default); "
        "lightgbm: with the LightGBM fallback (deploy it with scorer_package=lightgbm)",
    )
    args = parser.parse_args(argv)
    try:
        build_lambda_zip(args.output_dir, args.flavour)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
