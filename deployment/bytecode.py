"""Compile a package tree's modules to bytecode in a fresh interpreter: the same bytes every time.

``marshal`` marks an object it may meet again with ``FLAG_REF`` only when its reference count is
above one, and a string constant's count depends on what the compiling process holds (the
modules it imported, the strings it interned). So ``py_compile`` in a process that imported
botocore or the scorer (``make demo``, ``make deploy``) writes some ``.pyc`` files that differ in
one flag byte from those of ``make package``. Set constants (``x in {"a", "b"}`` becomes a
frozenset) are also ordered by string hashes, which ``PYTHONHASHSEED`` randomises.

``compile_tree_isolated`` therefore runs this file as a script in a new interpreter with a fixed
state: ``-S -s -P`` (no site, no user site, no script directory on ``sys.path``), an environment
of ``PYTHONHASHSEED=0`` and ``PYTHONUTF8=1`` only, and the modules compiled in sorted order.
This module imports only the standard library (it runs before anything else is importable).
"""

from __future__ import annotations

import importlib.util
import json
import py_compile
import subprocess
import sys
from pathlib import Path

#: The whole environment of the compiling interpreter.
COMPILE_ENV = {"PYTHONHASHSEED": "0", "PYTHONUTF8": "1"}


def compile_tree(root: Path, task_root: str) -> tuple[int, list[str]]:
    """Write ``__pycache__/*.pyc`` (unchecked-hash) for every module under ``root``, each naming
    its path under ``task_root``; returns the modules seen and the failures (``path: error``)."""
    failures, count = [], 0
    for source in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        relative = source.relative_to(root).as_posix()
        try:
            py_compile.compile(
                str(source),
                cfile=importlib.util.cache_from_source(str(source)),
                dfile=f"{task_root}/{relative}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as exc:
            failures.append(f"{relative}: {exc.msg.strip().splitlines()[-1]}")
        count += 1
    return count, failures


def compile_tree_isolated(
    root: Path, task_root: str, python: str = sys.executable
) -> tuple[int, list[str]]:
    """``compile_tree`` in a fresh interpreter of fixed state (module docstring)."""
    completed = subprocess.run(
        [python, "-S", "-s", "-P", str(Path(__file__).resolve()), str(root), task_root],
        env=COMPILE_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"the bytecode compiler ({python} {Path(__file__).name}) failed with exit code "
            f"{completed.returncode}: {completed.stderr.strip()[-2000:]}"
        )
    result = json.loads(completed.stdout)
    return int(result["count"]), list(result["failures"])


def main(argv: list[str]) -> int:
    count, failures = compile_tree(Path(argv[0]), argv[1])
    print(json.dumps({"count": count, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
