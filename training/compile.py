"""Compile a LightGBM model into the native predictor of a bundle (``predictor-<platform>.so``).

``model.txt`` stays the source of truth; this is a faster, LightGBM-free way to evaluate it:

1. treelite reads ``model.txt`` and tl2cgen writes its trees as C (``header.h``, ``main.c``),
   one function per tree (``parallel_comp``: ``predict_unit<k>`` in ``tu<k>.c``);
2. the generated test for a missing value (``data[i].missing != -1``, a look at the low bytes of
   the union's double) becomes ``!isnan(data[i].fvalue)``: exact for every double; then the
   numeric split "missing, or x <= t" becomes ``!(x > t)`` and "not missing and x <= t"
   becomes ``x <= t`` (``patch_numeric_tests``): the same for every double, NaN included, in
   one comparison instead of two branches;
3. every categorical test (``tmp = (unsigned int)(data[j].fvalue)``, then NaN, sign, range and
   bit tests on the double, at each of ~1,300 splits) becomes one AND of the split's category
   set with the row's category bit ``data[N + j].bits``, which the batch entry point computes
   once per row and feature with the same rules (``patch_category_tests``);
4. every tree function also records the leaf it ends in (``patch_leaf_ordinals``): after each
   ``result[0] += v;``, ``leaf[0] = l;`` with ``l`` the leaf's global number in
   ``lambda_function/trees.py``. The function's code is first matched with model.txt's tree,
   split by split (feature, threshold or category set, side of NaN) and leaf by leaf (value),
   and any difference is a CompileError. The misread check then reads each row's leaves
   instead of walking the trees again (on the bench batch: the check 2.9 -> 1.9 ms);
5. ``BATCH_SOURCE`` adds the batch entry points of ``lambda_function/compiled.py``: they run
   each tree over a block of rows before the next tree (the tree's code and branch history
   stay hot), adding the trees to each row's sum in model order as ``predict()`` does, then
   the base score and the sigmoid (``split_tree_calls``), so the probabilities are the same
   doubles; ``mushroom_predict_batch_leaves`` also returns the leaves. NaN is passed as it
   is: treelite already maps LightGBM's missing types (NaN at a numeric split of type
   ``None`` goes where 0.0 goes, at type ``NaN`` down the default branch, at a categorical
   split right; measured identical, and tested). Type ``Zero`` (``zero_as_missing``) is not
   supported (``check_missing_types``): such a model is not compiled;
6. every ``*.c`` and ``*.h`` of ``lambda_function/native/`` (the scorer's own native code,
   ``NATIVE_DIR``) is built into the same library, so it too is loaded only from the verified
   bundle (``scorer.c``: guard, trees and threshold; ``misread.c``: the misread check of
   ``lambda_function/misread.py``);
7. gcc builds it (``-O3 -fPIC -shared``, no OpenMP, only libc and libm), hardened
   (``HARDENING_FLAGS``: stack protector, ``_FORTIFY_SOURCE=2``, full RELRO).

On the champion (65 trees) and 1,000 dataset rows, one comparison per split and the blocks of
rows take the compiled predict from 2.33 to 1.24 ms (rows unsorted) and from 1.36 to 0.82 ms
(rows grouped by species, as ``ModelBundle.score`` predicts them): decision 0006.

No gcc (or any other failure): ``compile_predictor`` logs why and returns None; the bundle then
has no compiled predictor and the scorer uses LightGBM.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import lambda_function
from lambda_function.compiled import (
    PREDICTOR_ABI,
    CompiledArtifact,
    platform_tag,
    predictor_file_name,
)
from lambda_function.trees import TreeEnsemble, parse_model

log = logging.getLogger(__name__)

#: The scorer's native sources: every *.c and *.h here is built into the library.
NATIVE_DIR = Path(lambda_function.__file__).with_name("native")
#: The native misread check alone, built for the offline evaluation (``misread_library``).
MISREAD_SOURCE = NATIVE_DIR / "misread.c"

CC = "gcc"
# No -ffast-math: NaN must stay NaN. -ffp-contract=off: no fused multiply-add on any target.
CFLAGS = ("-O3", "-fPIC", "-shared", "-std=c99", "-ffp-contract=off", "-fvisibility=hidden")
# Hardening (lambda_function/native/scorer.c refuses to build without the first two): stack
# canaries in functions with arrays on the stack, glibc's checked string functions where sizes
# are known, and full RELRO (relocations resolved at load, then made read-only).
HARDENING_FLAGS = (
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-Wl,-z,relro,-z,now",
    "-Wl,-z,noexecstack",
)
_MISSING_TEST = re.compile(r"data\[(\d+)\]\.missing != -1")
# tl2cgen's test "the value is category c of the split's set" (bit mask), per split.
_CATEGORY_TEST = re.compile(
    r"!isnan\(data\[(\d+)\]\.fvalue\) && \(\(tmp = \(unsigned int\)\(data\[\1\]\.fvalue\) \), "
    r"\(\(data\[\1\]\.fvalue >= 0\) && "
    r"\(fabs\(data\[\1\]\.fvalue\) <= \(double\)\(1U << FLT_MANT_DIG\)\) && "
    r"\(\(tmp >= 0 && tmp < 64 && \(\( \(uint64_t\)(\d+)U >> tmp\) & 1\) \)\)\)\)"
)
# tl2cgen's numeric split, after patch_missing_tests: NaN goes left ("missing, or x op t") or
# right ("not missing and x op t").
_NUMERIC_LEFT = re.compile(
    r"!\(!isnan\(data\[(\d+)\]\.fvalue\)\) \|\| "
    r"\(data\[\1\]\.fvalue (<=|<|>=|>) (\(double\)[-+0-9.eE]+)\)"
)
_NUMERIC_RIGHT = re.compile(
    r"(?<!!)\(!isnan\(data\[(\d+)\]\.fvalue\)\) && "
    r"\(data\[\1\]\.fvalue (<=|<|>=|>) (\(double\)[-+0-9.eE]+)\)"
)
# "not (x > t)" is "x <= t or x is NaN": every ordered comparison with NaN is false.
_NEGATED = {"<=": ">", "<": ">=", ">": "<=", ">=": "<"}
_TREE_CALL = re.compile(r"^[ \t]*(predict_unit\d+)\(data, result\);[ \t]*\n", re.MULTILINE)
# A generated tree function, its declaration, a leaf (its value added to the row's sum) and the
# split tests as the patches above leave them (a category set, "x <= t" or "x < t", NaN left
# when negated).
_TREE_FUNCTION = re.compile(r"void predict_unit(\d+)\(union Entry\* data, double\* result\) \{")
_TREE_DECLARATION = re.compile(r"(void predict_unit\d+\(union Entry\* data, double\* result)\);")
_LEAF_ADD = re.compile(r"result\[0\] \+= ([-+0-9.eE]+);")
_CATEGORY_SPLIT = re.compile(r"\(data\[\d+ \+ (\d+)\]\.bits & \(uint64_t\)(\d+)U\)")
_NUMERIC_SPLIT = re.compile(r"(!?)\(data\[(\d+)\]\.fvalue (>=|>|<=|<) \(double\)([-+0-9.eE]+)\)")
_PREDICT_SIGNATURE = "(union Entry* data, int pred_margin, double* result)"
_ENTRY_UNION = "union Entry {\n"
_GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")

BATCH_SOURCE = """\
#include <float.h>
#include <math.h>
#include <stdint.h>
#include "header.h"

#if N_TARGET != 1 || MAX_N_CLASS != 1
#error "the batch entry point supports one target, one class (binary) only"
#endif
#define N_FEATURES {n_features}
#define N_TREES {n_trees}
/* Rows per block: each tree runs over a block before the next one; 64 rows of entries are
   20 KB (measured: 32 and 128 rows are no faster). */
#define BLOCK 64
#define EXPORT __attribute__((visibility("default")))

void predict_after_trees(union Entry* data, int pred_margin, double* result);

EXPORT int32_t mushroom_predictor_abi(void) {{ return {abi}; }}

EXPORT int32_t mushroom_num_feature(void) {{ return N_FEATURES; }}

EXPORT int32_t mushroom_num_tree(void) {{ return N_TREES; }}

/* P(positive class) of each row into out; with leaves, also each row's leaf in each tree
   (leaves[i * N_TREES + t]: the global leaf numbers of lambda_function/trees.py, written by
   the tree functions: patch_leaf_ordinals). */
static int32_t predict_rows(const double* X, int64_t n_rows, double* out, int32_t* leaves) {{
  /* rows[r][j]: feature j; rows[r][N_FEATURES + j].bits: its category bit
     (patch_category_tests): 1 << the integer part when the value is a number in [0, 2^24]
     below 64, as tl2cgen's test reads it, else 0, which no category set contains. */
  union Entry rows[BLOCK][2 * N_FEATURES];
  double result[BLOCK];
  int32_t leaf[BLOCK][N_TREES];
  for (int64_t start = 0; start < n_rows; start += BLOCK) {{
    const int n = n_rows - start < BLOCK ? (int)(n_rows - start) : BLOCK;
    for (int r = 0; r < n; ++r) {{
      const double* x = X + (start + r) * N_FEATURES;
      for (int j = 0; j < N_FEATURES; ++j) {{
        const double v = x[j];
        rows[r][j].fvalue = v; /* NaN = missing: the trees test isnan() */
        const int in_range = !isnan(v) && v >= 0 && fabs(v) <= (double)(1U << FLT_MANT_DIG);
        const unsigned int code = in_range ? (unsigned int)v : 64;
        rows[r][N_FEATURES + j].bits = code < 64 ? (uint64_t)1 << code : 0;
      }}
      result[r] = 0.0;
    }}
    /* The trees in model order (split_tree_calls), each over the block. */
{tree_calls}
    for (int r = 0; r < n; ++r) {{
      predict_after_trees(rows[r], 0, &result[r]); /* base score, sigmoid */
      out[start + r] = result[r];
    }}
    if (leaves != NULL)
      for (int r = 0; r < n; ++r)
        for (int t = 0; t < N_TREES; ++t) leaves[(start + r) * N_TREES + t] = leaf[r][t];
  }}
  return 0;
}}

EXPORT int32_t mushroom_predict_batch(const double* X, int64_t n_rows, int32_t n_cols,
                                      double* out) {{
  return n_cols == N_FEATURES ? predict_rows(X, n_rows, out, NULL) : -1;
}}

EXPORT int32_t mushroom_predict_batch_leaves(const double* X, int64_t n_rows, int32_t n_cols,
                                             double* out, int32_t* leaves) {{
  return n_cols == N_FEATURES && leaves != NULL ? predict_rows(X, n_rows, out, leaves) : -1;
}}
"""


class CompileError(RuntimeError):
    """The model cannot be compiled faithfully."""


def check_missing_types(model_text: str) -> None:
    """CompileError when a split has missing type ``Zero`` (``decision_type`` bits 2-3 = 1):
    LightGBM then treats 0.0 itself as missing, which the generated code does not."""
    for line in model_text.splitlines():
        if line.startswith("decision_type="):
            if any((int(d) >> 2) & 3 == 1 for d in line.split("=", 1)[1].split()):
                raise CompileError(
                    "splits of missing type Zero (zero_as_missing) are not supported"
                )


def patch_missing_tests(source: str) -> str:
    """Replace tl2cgen's union test for a missing value by an exact NaN test (a tree without
    splits has none: only a form this code does not know is refused)."""
    patched = _MISSING_TEST.sub(r"!isnan(data[\1].fvalue)", source)
    if ".missing" in patched:
        raise CompileError("generated code does not test missing values as expected")
    return patched


def patch_numeric_tests(source: str) -> str:
    """One comparison per numeric split instead of a NaN test and a comparison:
    ``isnan(x) || x <= t`` is ``!(x > t)``, ``!isnan(x) && x <= t`` is ``x <= t`` (an ordered
    comparison with NaN is false; no -ffast-math lets the compiler assume otherwise)."""
    patched = _NUMERIC_LEFT.sub(lambda m: f"!(data[{m[1]}].fvalue {_NEGATED[m[2]]} {m[3]})", source)
    return _NUMERIC_RIGHT.sub(lambda m: f"(data[{m[1]}].fvalue {m[2]} {m[3]})", patched)


def patch_category_tests(source: str, n_features: int) -> str:
    """Replace tl2cgen's per-split categorical test on the double by an AND with the row's
    category bit (``BATCH_SOURCE``): true for exactly the same values, in one test instead of
    converting and range-checking the double again at every split."""
    patched = _CATEGORY_TEST.sub(
        lambda m: f"(data[{n_features} + {m[1]}].bits & (uint64_t){m[2]}U)", source
    )
    if "tmp =" in patched:
        raise CompileError("generated code tests categories in a form this code does not know")
    return patched


def patch_entry_union(header: str) -> str:
    """Give ``union Entry`` (``header.h``) the 64-bit member the category bits are read from."""
    if header.count(_ENTRY_UNION) != 1:
        raise CompileError("generated header does not declare union Entry as expected")
    return header.replace(_ENTRY_UNION, _ENTRY_UNION + "  uint64_t bits;\n")


def _preorder(ensemble: TreeEnsemble, tree: int) -> Iterator[tuple[bool, int]]:
    """Tree ``tree`` depth first, left child first: (True, node) per split, (False, global
    leaf) per leaf, in the order the generated code writes them."""
    stack = [int(ensemble.roots[tree])]
    while stack:
        child = stack.pop()
        if child < 0:
            yield False, -child - 1
        else:
            yield True, child
            stack += [int(ensemble.right[child]), int(ensemble.left[child])]


def _split_matches(line: str, ensemble: TreeEnsemble, node: int) -> bool:
    """True when the generated test on ``line`` is node ``node``'s: its feature, its category
    set or threshold, and the side NaN takes (``TreeEnsemble.decide``)."""
    feature = int(ensemble.feature[node])
    if ensemble.decision_type[node] & 1:
        match = _CATEGORY_SPLIT.search(line)
        start, words = int(ensemble.cat_start[node]), int(ensemble.cat_words[node])
        if match is None or int(match[1]) != feature or words > 2:
            return False
        mask = sum(
            int(w) << (32 * i) for i, w in enumerate(ensemble.cat_bits[start : start + words])
        )
        return int(match[2]) == mask
    match = _NUMERIC_SPLIT.search(line)
    if match is None or int(match[2]) != feature:
        return False
    negated, operator, value = match[1] == "!", match[3], float(match[4])
    # Left when x <= t: "x <= t", "!(x > t)", or with t' the next double "x < t'", "!(x >= t')";
    # only the negated forms send NaN left.
    if negated != (operator in (">", ">=")):
        return False
    threshold = float(ensemble.threshold[node])
    expected = threshold if operator in ("<=", ">") else float(np.nextafter(threshold, np.inf))
    nan_left = bool(ensemble.decide(np.array([node]), np.array([np.nan]))[0])
    return value == expected and nan_left == negated


def patch_leaf_ordinals(tree_code: str, ensemble: TreeEnsemble) -> str:
    """Make a generated tree function record the leaf it ends in: its signature gains
    ``int32_t* leaf``, and each ``result[0] += v;`` is followed by ``leaf[0] = l;``, ``l`` the
    leaf's global number in ``lambda_function/trees.py``, so that the misread check reads the
    rows' leaves instead of finding them again (``misread.c``).

    The code is first matched with the tree as ``trees.py`` reads it from ``model.txt``, depth
    first, left child first: every split's feature, category set or threshold and the side NaN
    takes, every leaf's value. Any difference is a CompileError: an ordinal is always the leaf
    whose value the function adds."""
    functions = _TREE_FUNCTION.findall(tree_code)
    if len(functions) != 1 or int(functions[0]) >= ensemble.n_trees:
        raise CompileError("generated tree code does not define one tree function as expected")
    tree = int(functions[0])
    expected = list(_preorder(ensemble, tree))
    lines = tree_code.split("\n")
    at = 0
    for i, line in enumerate(lines):
        leaf = _LEAF_ADD.search(line)
        is_split = line.lstrip().startswith("if (")
        if leaf is None and not is_split:
            continue
        if at >= len(expected) or expected[at][0] != is_split or (leaf is not None and is_split):
            raise CompileError(f"tree {tree}: the generated code has another shape than model.txt")
        split, index = expected[at]
        if split and not _split_matches(line, ensemble, index):
            raise CompileError(f"tree {tree}: a generated split differs from model.txt's")
        if not split:
            if float(leaf[1]) != float(ensemble.leaf_value[index]):
                raise CompileError(f"tree {tree}: a generated leaf differs from model.txt's")
            lines[i] = line[: leaf.end()] + f" leaf[0] = {index};" + line[leaf.end() :]
        at += 1
    if at != len(expected):
        raise CompileError(f"tree {tree}: the generated code has another shape than model.txt")
    return _TREE_FUNCTION.sub(
        lambda m: f"void predict_unit{m[1]}(union Entry* data, double* result, int32_t* leaf) {{",
        "\n".join(lines),
    )


def patch_tree_declarations(header: str, n_trees: int) -> str:
    """Declare every tree function with the ``int32_t* leaf`` of ``patch_leaf_ordinals``."""
    patched, count = _TREE_DECLARATION.subn(r"\1, int32_t* leaf);", header)
    if count != n_trees:
        raise CompileError(f"generated header declares {count} tree functions, not {n_trees}")
    return patched


def patch_predict_calls(main_source: str) -> str:
    """``predict()`` calls the tree functions with the ``leaf`` of ``patch_leaf_ordinals`` (a
    local it does not read)."""
    head = f"void predict{_PREDICT_SIGNATURE} {{\n"
    if main_source.count(head) != 1:
        raise CompileError("generated code does not define predict() as expected")
    patched = _TREE_CALL.sub(
        lambda m: m[0].replace("(data, result);", "(data, result, &leaf);"), main_source
    )
    return patched.replace(head, head + "  int32_t leaf; /* each tree's leaf: not used here */\n")


def split_tree_calls(main_source: str) -> tuple[str, list[str]]:
    """Add ``predict_after_trees()``: ``predict()`` without its calls of the tree functions
    (the base score and the sigmoid, applied to a sum of the trees); return those calls in
    model order. ``predict()`` itself stays whole, for any other caller."""
    head = f"void predict{_PREDICT_SIGNATURE} {{\n"
    start = main_source.find(head)
    end = main_source.find("\n}\n", start) + 3
    if start < 0 or end < 3:
        raise CompileError("generated code does not define predict() as expected")
    body = main_source[start + len(head) : end]
    calls = _TREE_CALL.findall(body)
    rest = _TREE_CALL.sub("", body)
    if not calls or "predict_unit" in rest:
        raise CompileError("generated predict() does not call one function per tree as expected")
    after_trees = f"\nvoid predict_after_trees{_PREDICT_SIGNATURE} {{\n{rest}"
    return main_source + after_trees, calls


def copy_native_sources(source_dir: Path, target_dir: Path) -> list[str]:
    """Copy every ``*.c`` and ``*.h`` of ``source_dir`` into ``target_dir`` (the generated
    sources); CompileError when one would replace a generated file. Returns the names."""
    names = []
    for source in sorted([*source_dir.glob("*.c"), *source_dir.glob("*.h")]):
        target = target_dir / source.name
        if target.exists():
            raise CompileError(f"{source} has the name of a generated source file")
        shutil.copyfile(source, target)
        names.append(source.name)
    return names


def max_glibc(data: bytes) -> str | None:
    """The highest ``GLIBC_x.y`` version named in a shared object (its version needs)."""
    versions = {
        tuple(int(part) for part in m.groups() if part) for m in _GLIBC_VERSION.finditer(data)
    }
    return "GLIBC_" + ".".join(map(str, max(versions))) if versions else None


def compile_predictor(model_text: str) -> CompiledArtifact | None:
    """Compile ``model_text`` for this platform; None (logged) when it cannot be done."""
    compiler = shutil.which(CC)
    if compiler is None:
        log.info("no compiled predictor: %s not found; the bundle will be served by LightGBM", CC)
        return None
    try:
        return _compile(model_text, compiler)
    except Exception as exc:  # whatever fails, the bundle stays servable by LightGBM
        detail = getattr(exc, "stderr", None) or exc
        log.warning("no compiled predictor: %s; the bundle will be served by LightGBM", detail)
        return None


# tl2cgen 1.0 embeds Treelite 4.1.2 and reads the model through treelite 4.x's serialisation, so
# its C++ logger writes "The model you are loading originated from a newer Treelite version" (and
# the two versions) to stderr on every compile. The compiled predictor is held to LightGBM's own
# probabilities by tests, so that one notice says nothing to the user; tl2cgen's info lines
# ("Parallel compilation enabled; ...") go to the log. Anything else it writes passes through.
TREELITE_VERSION_NOTICE = re.compile(
    r"(?m)^.*The model you are loading originated from a newer Treelite version.*\n"
    r"Currently running Treelite version \S+\n"
    r"The model checkpoint was generated from Treelite version \S+\n?"
)


@contextlib.contextmanager
def _quiet_tl2cgen() -> Iterator[None]:
    """Run tl2cgen with its version notice dropped and its info lines logged at debug level."""
    sys.stderr.flush()
    saved = os.dup(2)
    info = io.StringIO()
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)  # the native library writes to fd 2, not sys.stderr
        try:
            with contextlib.redirect_stdout(info):  # tl2cgen's log callback print()s
                yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = TREELITE_VERSION_NOTICE.sub("", captured.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
            for line in info.getvalue().splitlines():
                log.debug("tl2cgen: %s", line)


def _compile(model_text: str, compiler: str) -> CompiledArtifact:
    import tl2cgen
    import treelite

    started = time.perf_counter()
    check_missing_types(model_text)
    with tempfile.TemporaryDirectory(prefix="predictor-") as tmp:
        work = Path(tmp)
        (work / "model.txt").write_text(model_text)
        model = treelite.frontend.load_lightgbm_model(str(work / "model.txt"))
        n_features = int(model.num_feature)
        # One function per tree, so that the batch entry point can run a tree over many rows.
        params = {"parallel_comp": max(int(model.num_tree), 1)}
        with _quiet_tl2cgen():
            tl2cgen.generate_c_code(model, str(work / "src"), params=params)
        ensemble = parse_model(model_text)
        for tree_file in (work / "src").glob("tu[0-9]*.c"):  # tl2cgen's, one per tree
            tree_code = patch_numeric_tests(patch_missing_tests(tree_file.read_text()))
            tree_code = patch_category_tests(tree_code, n_features)
            tree_file.write_text(patch_leaf_ordinals(tree_code, ensemble))
        header = work / "src" / "header.h"
        header.write_text(
            patch_tree_declarations(patch_entry_union(header.read_text()), ensemble.n_trees)
        )
        main = work / "src" / "main.c"
        main_code, tree_calls = split_tree_calls(main.read_text())
        if tree_calls != [f"predict_unit{t}" for t in range(ensemble.n_trees)]:
            raise CompileError("generated predict() does not call the trees in model order")
        main.write_text(patch_predict_calls(main_code))
        (work / "src" / "batch.c").write_text(
            BATCH_SOURCE.format(
                n_features=n_features,
                abi=PREDICTOR_ABI,
                n_trees=len(tree_calls),
                tree_calls="\n".join(
                    f"    for (int r = 0; r < n; ++r) {call}(rows[r], &result[r], &leaf[r][{t}]);"
                    for t, call in enumerate(tree_calls)
                ),
            )
        )
        copy_native_sources(NATIVE_DIR, work / "src")
        platform = platform_tag()
        output = work / predictor_file_name(platform)
        sources = sorted(str(p) for p in (work / "src").glob("*.c"))
        subprocess.run(
            [compiler, *CFLAGS, *HARDENING_FLAGS, "-o", str(output), *sources, "-lm"],
            check=True,
            capture_output=True,
            text=True,
        )
        data = output.read_bytes()
    version = subprocess.run(
        [compiler, "-dumpfullversion"], check=False, capture_output=True, text=True
    ).stdout.strip()
    artifact = CompiledArtifact(
        platform=platform,
        file_name=output.name,
        data=data,
        glibc=max_glibc(data),
        compiler=f"{CC} {version}".strip(),
    )
    log.info(
        "compiled predictor %s: %d bytes, %s, %.1f s",
        artifact.file_name,
        len(data),
        artifact.glibc or "no glibc symbol versions",
        time.perf_counter() - started,
    )
    return artifact


@functools.cache
def misread_library() -> Any | None:
    """The native misread check alone, built from this repository's source for the offline
    evaluation (a bundle's own library carries it for serving); None without a compiler."""
    compiler = shutil.which(CC)
    if compiler is None:
        return None
    work = Path(tempfile.mkdtemp(prefix="misread-"))
    output = work / "misread.so"
    try:
        subprocess.run(
            [compiler, *CFLAGS, *HARDENING_FLAGS, "-o", str(output), str(MISREAD_SOURCE), "-lm"],
            check=True,
            capture_output=True,
            text=True,
        )
        return ctypes.CDLL(str(output))
    except (OSError, subprocess.CalledProcessError) as exc:
        log.warning("no native misread check for the evaluation (%s): the reference runs", exc)
        return None
