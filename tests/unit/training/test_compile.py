"""The compiled predictor: built from model.txt, same probabilities as LightGBM, NaN included."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from lambda_function.compiled import PREDICTOR_ABI, platform_tag, predictor_file_name
from lambda_function.model import BUNDLE_METADATA_FILE, COMPILED_KEY, ModelBundle
from lambda_function.trees import TreeEnsemble, parse_model
from training import compile as compile_mod
from training import export
from training.compile import (
    NATIVE_DIR,
    CompileError,
    check_missing_types,
    copy_native_sources,
    max_glibc,
    patch_category_tests,
    patch_entry_union,
    patch_leaf_ordinals,
    patch_missing_tests,
    patch_numeric_tests,
    patch_predict_calls,
    patch_tree_declarations,
    split_tree_calls,
)
from training.features import encode_frame


def _with_missing_values(matrix: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    holed = matrix.copy()
    holed[rng.random(matrix.shape) < share] = np.nan
    return holed


def test_the_compiled_predictor_gives_lightgbms_probabilities(tiny_compiled_bundle, tiny_dataset):
    compiled = ModelBundle.load(tiny_compiled_bundle)
    reference = ModelBundle.load(tiny_compiled_bundle, predictor="lightgbm")
    assert (compiled.predictor.kind, reference.predictor.kind) == ("compiled", "lightgbm")
    matrix = encode_frame(tiny_dataset, compiled.encoder)
    # Missing values in every column, numeric ones too (LightGBM reads those as 0.0 at splits
    # of missing type None, as the default branch at type NaN).
    for rows in (matrix, _with_missing_values(matrix, 0.3), np.full_like(matrix, np.nan)):
        expected = reference.booster.predict(rows, num_threads=1)
        np.testing.assert_allclose(compiled.predict_proba(rows), expected, rtol=0, atol=1e-12)
        assert compiled.score(rows)[1] == reference.score(rows)[1]


def test_values_no_encoder_produces_score_as_lightgbm_scores_them(
    tiny_compiled_bundle, tiny_dataset
):
    """The category codes computed once per row follow tl2cgen's (and LightGBM's) reading of
    any double: negative, fractional, beyond 64 or 2^24, infinite, -0.0."""
    compiled = ModelBundle.load(tiny_compiled_bundle)
    reference = ModelBundle.load(tiny_compiled_bundle, predictor="lightgbm")
    matrix = encode_frame(tiny_dataset, compiled.encoder)
    rng = np.random.default_rng(3)
    odd = np.array([-1.0, -0.0, 0.5, 2.5, 3.999, 63.0, 64.0, 1e9, 2.0**24, 2.0**24 + 1, np.inf])
    for share in (0.2, 1.0):
        rows = matrix.copy()
        mask = rng.random(rows.shape) < share
        rows[mask] = rng.choice(np.append(odd, -np.inf), size=int(mask.sum()))
        expected = reference.booster.predict(rows, num_threads=1)
        np.testing.assert_allclose(compiled.predict_proba(rows), expected, rtol=0, atol=1e-12)


def test_category_tests_read_the_rows_category_bit():
    split = (
        "!isnan(data[3].fvalue) && ((tmp = (unsigned int)(data[3].fvalue) ), "
        "((data[3].fvalue >= 0) && (fabs(data[3].fvalue) <= (double)(1U << FLT_MANT_DIG)) && "
        "((tmp >= 0 && tmp < 64 && (( (uint64_t)1058U >> tmp) & 1) ))))"
    )
    assert patch_category_tests(f"if ( LIKELY( {split} ) ) {{", 20) == (
        "if ( LIKELY( (data[20 + 3].bits & (uint64_t)1058U) ) ) {"
    )
    with pytest.raises(CompileError, match="categories"):
        patch_category_tests("tmp = (unsigned int)(data[3].fvalue); x[tmp];", 20)


def test_the_bundle_records_file_checksum_and_platform(tiny_compiled_bundle):
    metadata = json.loads((tiny_compiled_bundle / BUNDLE_METADATA_FILE).read_text())
    name = predictor_file_name(platform_tag())
    entry = metadata[COMPILED_KEY][platform_tag()]
    assert entry["file"] == name and entry["abi"] == PREDICTOR_ABI == 2
    assert entry["glibc"] is None or entry["glibc"].startswith("GLIBC_2.")
    assert metadata["files"][name]["size"] == (tiny_compiled_bundle / name).stat().st_size
    assert len(metadata["files"][name]["sha256"]) == 64


def test_the_library_is_built_hardened(tiny_compiled_bundle):
    """Full RELRO (a GNU_RELRO segment and BIND_NOW), stack canaries, no executable stack, and
    the compiler's own account of _FORTIFY_SOURCE and the stack protector."""
    from deployment.elf_audit import read_hardening

    data = (tiny_compiled_bundle / predictor_file_name(platform_tag())).read_bytes()
    hardening = read_hardening(data)
    assert hardening.relro and hardening.bind_now and hardening.full_relro
    assert hardening.stack_protector  # the trees' batch entry point has arrays on the stack
    assert not hardening.executable_stack
    # The library needs only libc and libm: nothing but their functions is imported.
    assert not {name for name in hardening.imports if name.startswith("_Z")}
    predictor = ModelBundle.load(tiny_compiled_bundle).predictor
    assert predictor.build_flags() == "_FORTIFY_SOURCE=2 stack-protector-strong"
    if shutil.which("readelf"):  # the same facts from binutils, where it is installed
        with tempfile.NamedTemporaryFile(suffix=".so") as handle:
            handle.write(data)
            handle.flush()
            headers = _readelf("-lW", handle.name)
            dynamic = _readelf("-dW", handle.name)
            symbols = _readelf("--dyn-syms", "-W", handle.name)
        assert "GNU_RELRO" in headers
        assert re.search(r"\(FLAGS\)\s+BIND_NOW", dynamic) or "Flags: NOW" in dynamic
        assert "__stack_chk_fail" in symbols


def _readelf(*args: str) -> str:
    return subprocess.run(["readelf", *args], check=True, capture_output=True, text=True).stdout


def test_the_hardening_check_sees_a_library_built_without_the_flags(tmp_path):
    """The check can fail: the same kind of code built with -z lazy, no stack protector."""
    from deployment.elf_audit import read_hardening

    if shutil.which(compile_mod.CC) is None:
        pytest.skip("no C compiler here")
    source = tmp_path / "plain.c"
    source.write_text(
        "#include <string.h>\nint f(const char* s, int n) { char b[64]; memcpy(b, s, n);"
        " return b[3]; }\n"
    )
    plain, hardened = tmp_path / "plain.so", tmp_path / "hardened.so"
    base = [compile_mod.CC, *compile_mod.CFLAGS, str(source)]
    subprocess.run([*base, "-fno-stack-protector", "-Wl,-z,lazy", "-o", str(plain)], check=True)
    subprocess.run([*base, *compile_mod.HARDENING_FLAGS, "-o", str(hardened)], check=True)
    weak, strong = read_hardening(plain.read_bytes()), read_hardening(hardened.read_bytes())
    assert not weak.full_relro and not weak.stack_protector and not weak.fortified
    assert strong.full_relro and strong.stack_protector
    assert strong.fortified == {"__memcpy_chk"}  # a copy into a buffer of known size


@pytest.mark.parametrize("dropped", ["-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"])
def test_the_native_sources_refuse_to_build_without_the_hardening_flags(tmp_path, dropped):
    if shutil.which(compile_mod.CC) is None:
        pytest.skip("no C compiler here")
    flags = [f for f in compile_mod.HARDENING_FLAGS if f != dropped]
    # Undone explicitly too: some distributions' gcc enables both by default.
    flags.append("-fno-stack-protector" if dropped.startswith("-fstack") else "-U_FORTIFY_SOURCE")
    result = subprocess.run(
        [compile_mod.CC, *compile_mod.CFLAGS, *flags, "-fsyntax-only"]
        + [str(p) for p in sorted(NATIVE_DIR.glob("*.c"))],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "training/compile.py CFLAGS" in result.stderr


def test_a_model_with_zero_as_missing_is_not_compiled():
    assert check_missing_types("Tree=0\nsplit_feature=0 1\ndecision_type=2 9") is None
    with pytest.raises(CompileError, match="Zero"):
        check_missing_types("Tree=0\nsplit_feature=0\ndecision_type=4")
    assert compile_mod.compile_predictor("Tree=0\nsplit_feature=0\ndecision_type=6\n") is None


def test_missing_value_tests_become_exact_nan_tests():
    source = "if (!(data[9].missing != -1) || data[12].missing != -1 && x) {}"
    assert patch_missing_tests(source) == (
        "if (!(!isnan(data[9].fvalue)) || !isnan(data[12].fvalue) && x) {}"
    )
    assert patch_missing_tests("result[0] += 0.5;") == "result[0] += 0.5;"  # a tree, no split
    with pytest.raises(CompileError):
        patch_missing_tests("if (data[1].missing == 0) {}")  # a form this code does not know


def test_numeric_tests_become_one_comparison():
    """NaN goes left: ``isnan(x) || x <= t`` is ``!(x > t)``; right: ``x <= t`` alone."""
    left = "if ( UNLIKELY( !(!isnan(data[9].fvalue)) || (data[9].fvalue <= (double)8.585) ) ) {"
    right = "if ( LIKELY(  (!isnan(data[2].fvalue)) && (data[2].fvalue < (double)-1.5e-05) ) ) {"
    assert patch_numeric_tests(left) == "if ( UNLIKELY( !(data[9].fvalue > (double)8.585) ) ) {"
    assert patch_numeric_tests(right) == "if ( LIKELY(  (data[2].fvalue < (double)-1.5e-05) ) ) {"
    # An infinite threshold is a constant: left as it is, still exact.
    constant = "if (!(!isnan(data[1].fvalue)) || (1)) {"
    assert patch_numeric_tests(constant) == constant
    # "missing and x <= t" is no form of tl2cgen's; it must not lose its negation.
    odd = "if (!(!isnan(data[1].fvalue)) && (data[1].fvalue <= (double)2)) {"
    assert patch_numeric_tests(odd) == odd


def test_one_negated_comparison_is_the_nan_test_and_the_comparison():
    """The identities patch_numeric_tests relies on, for every kind of double (IEEE 754)."""
    values = [np.nan, -np.inf, -1.0, -0.0, 0.0, 8.585, np.nextafter(8.585, 9), np.inf]
    threshold = 8.585
    for x in values:
        assert (not x > threshold) == (np.isnan(x) or x <= threshold)
        assert (not x >= threshold) == (np.isnan(x) or x < threshold)
        assert (x <= threshold) == (not np.isnan(x) and x <= threshold)


def test_the_trees_run_in_model_order_then_the_base_score_and_the_sigmoid():
    predict = (
        "void predict(union Entry* data, int pred_margin, double* result) {\n"
        "  predict_unit0(data, result);\n  predict_unit1(data, result);\n"
        "  predict_unit10(data, result);\n  predict_unit2(data, result);\n"
        "  result[0] += 0.25;\n  if (!pred_margin) { postprocess(result); }\n}\n"
    )
    main = f'#include "header.h"\n{predict}\nvoid postprocess(double* result) {{\n}}\n'
    patched, calls = split_tree_calls(main)
    assert calls == ["predict_unit0", "predict_unit1", "predict_unit10", "predict_unit2"]
    assert patched.startswith(main)  # predict() stays whole for any other caller
    assert patched[len(main) :] == (
        "\nvoid predict_after_trees(union Entry* data, int pred_margin, double* result) {\n"
        "  result[0] += 0.25;\n  if (!pred_margin) { postprocess(result); }\n}\n"
    )
    with pytest.raises(CompileError, match="define predict"):
        split_tree_calls("void predict(union Entry* data) { tree(data); }")
    with pytest.raises(CompileError, match="one function per tree"):
        split_tree_calls(predict.replace("  predict_unit1(", "  x = predict_unit1("))


def _tree_sources(model_text: str, directory) -> dict[int, str]:
    """tl2cgen's tree functions of the model with the patches applied before the leaves."""
    import tl2cgen
    import treelite

    (directory / "model.txt").write_text(model_text)
    model = treelite.frontend.load_lightgbm_model(str(directory / "model.txt"))
    with compile_mod._quiet_tl2cgen():
        params = {"parallel_comp": int(model.num_tree)}
        tl2cgen.generate_c_code(model, str(directory / "src"), params=params)
    sources = {}
    for path in (directory / "src").glob("tu[0-9]*.c"):
        code = patch_numeric_tests(patch_missing_tests(path.read_text()))
        code = patch_category_tests(code, int(model.num_feature))
        sources[int(re.search(r"void predict_unit(\d+)\(", code)[1])] = code
    return sources


def _leaves_in_code_order(ensemble: TreeEnsemble, tree: int) -> list[int]:
    """Tree ``tree``'s leaves depth first, left child first (written independently of
    compile._preorder: recursion instead of a stack)."""

    def walk(child: int) -> list[int]:
        if child < 0:
            return [-child - 1]
        return walk(int(ensemble.left[child])) + walk(int(ensemble.right[child]))

    return walk(int(ensemble.roots[tree]))


def test_each_tree_function_records_the_leaf_whose_value_it_adds(tiny_bundle, tmp_path):
    text = ModelBundle.load(tiny_bundle).model_text
    ensemble = parse_model(text)
    sources = _tree_sources(text, tmp_path)
    assert sorted(sources) == list(range(ensemble.n_trees))
    for tree, code in sources.items():
        patched = patch_leaf_ordinals(code, ensemble)
        pairs = re.findall(r"result\[0\] \+= ([-+0-9.eE]+); leaf\[0\] = (\d+);", patched)
        assert [int(leaf) for _, leaf in pairs] == _leaves_in_code_order(ensemble, tree)
        assert all(float(v) == ensemble.leaf_value[int(leaf)] for v, leaf in pairs)
        assert patched.count("result[0] +=") == len(pairs)  # every leaf records itself
        signature = f"void predict_unit{tree}(union Entry* data, double* result, int32_t* leaf) {{"
        assert signature in patched


def _first(pattern: str, code: str) -> re.Match:
    match = re.search(pattern, code)
    assert match is not None, pattern
    return match


def _changed(code: str, change: str) -> str:
    """The tree code with one thing changed that makes it another tree than model.txt's."""
    if change == "leaf value":
        m = _first(r"result\[0\] \+= ([-+0-9.eE]+);", code)
        return code[: m.start(1)] + repr(float(m[1]) + 1e-3) + code[m.end(1) :]
    if change == "a leaf less":
        m = _first(r"\n[^\n]*result\[0\] \+= [^\n]*", code)
        return code[: m.start()] + code[m.end() :]
    if change == "feature":
        m = _first(r"data\[(\d+)\]\.fvalue", code)
        return code[: m.start(1)] + str(int(m[1]) + 1) + code[m.end(1) :]
    if change == "threshold":
        m = _first(r"\(double\)([-+0-9.eE]+)\)", code)
        return code[: m.start(1)] + repr(np.nextafter(float(m[1]), np.inf)) + code[m.end(1) :]
    if change == "category set":
        m = _first(r"\(uint64_t\)(\d+)U\)", code)
        return code[: m.start(1)] + str(int(m[1]) ^ 1) + code[m.end(1) :]
    if change == "side of NaN":
        m = _first(r"!\((data\[\d+\]\.fvalue) > (\(double\)[-+0-9.eE]+)\)", code)
        return code[: m.start()] + f"({m[1]} <= {m[2]})" + code[m.end() :]
    if change == "another tree":
        m = _first(r"void predict_unit(\d+)\(", code)
        return code[: m.start(1)] + str(int(m[1]) + 1) + code[m.end(1) :]
    raise AssertionError(change)


@pytest.mark.parametrize(
    "change",
    [
        "leaf value",
        "a leaf less",
        "feature",
        "threshold",
        "category set",
        "side of NaN",
        "another tree",
    ],
)
def test_tree_code_unlike_model_txt_records_no_leaves(tiny_bundle, tmp_path, change):
    # A leaf ordinal is only written where the code is the tree of model.txt, split by split
    # and leaf by leaf: anything else is a CompileError (the bundle is then served by LightGBM).
    text = ModelBundle.load(tiny_bundle).model_text
    ensemble = parse_model(text)
    sources = _tree_sources(text, tmp_path)
    # A tree with a numeric split whose NaN goes left and a categorical one, not the last.
    tree = next(
        t
        for t, code in sorted(sources.items())
        if "!(data[" in code and ".bits &" in code and t + 1 < ensemble.n_trees
    )
    code = sources[tree]
    patch_leaf_ordinals(code, ensemble)  # the unchanged code passes
    with pytest.raises(CompileError, match=r"^tree \d+: (a generated|the generated code)"):
        patch_leaf_ordinals(_changed(code, change), ensemble)


def test_tree_declarations_and_predict_calls_pass_the_leaf():
    header = (
        "void predict_unit0(union Entry* data, double* result);\n"
        "void predict_unit1(union Entry* data, double* result);\n"
    )
    assert patch_tree_declarations(header, 2) == header.replace(
        "result);", "result, int32_t* leaf);"
    )
    with pytest.raises(CompileError, match="declares 2 tree functions, not 3"):
        patch_tree_declarations(header, 3)
    predict = (
        "void predict(union Entry* data, int pred_margin, double* result) {\n"
        "  unsigned int tmp;\n  predict_unit0(data, result);\n  predict_unit1(data, result);\n}\n"
    )
    assert patch_predict_calls(predict) == (
        "void predict(union Entry* data, int pred_margin, double* result) {\n"
        "  int32_t leaf; /* each tree's leaf: not used here */\n  unsigned int tmp;\n"
        "  predict_unit0(data, result, &leaf);\n  predict_unit1(data, result, &leaf);\n}\n"
    )
    with pytest.raises(CompileError, match="define predict"):
        patch_predict_calls("void predict(union Entry* data) {}\n")


def test_the_library_records_each_rows_leaves_as_the_trees_read_them(
    tiny_compiled_bundle, tiny_dataset
):
    # The leaves the compiled trees record while they score are lambda_function/trees.py's,
    # on the data, on missing values and on odd doubles, and recording them changes no
    # probability (the same doubles as without).
    import ctypes

    bundle = ModelBundle.load(tiny_compiled_bundle)
    ensemble = parse_model(bundle.model_text)
    library = bundle.predictor.library
    library.mushroom_num_tree.restype = ctypes.c_int32
    assert library.mushroom_num_tree() == ensemble.n_trees
    predict = library.mushroom_predict_batch_leaves
    predict.restype = ctypes.c_int32
    predict.argtypes = (
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_void_p,
    )
    matrix = encode_frame(tiny_dataset, bundle.encoder)
    rng = np.random.default_rng(5)
    odd = matrix.copy()
    mask = rng.random(odd.shape) < 0.3
    odd[mask] = rng.choice([-1.0, -0.0, 0.5, 63.0, 64.0, 1e9, np.inf, np.nan], int(mask.sum()))
    for rows in (matrix, _with_missing_values(matrix, 0.3), odd):
        rows = np.ascontiguousarray(rows)
        p = np.empty(len(rows))
        leaves = np.full((len(rows), ensemble.n_trees), -1, dtype=np.int32)
        status = predict(
            rows.ctypes.data, len(rows), rows.shape[1], p.ctypes.data, leaves.ctypes.data
        )
        assert status == 0
        np.testing.assert_array_equal(leaves, ensemble.leaves(rows))
        assert p.tobytes() == bundle.predictor.predict(rows).tobytes()
    no_leaves = predict(rows.ctypes.data, len(rows), rows.shape[1], p.ctypes.data, None)
    assert no_leaves == -1


def test_the_entry_union_gets_the_category_bits():
    header = "#include <stdint.h>\nunion Entry {\n  int missing;\n  double fvalue;\n};\n"
    assert "union Entry {\n  uint64_t bits;\n  int missing;" in patch_entry_union(header)
    with pytest.raises(CompileError, match="union Entry"):
        patch_entry_union("struct Entry { double fvalue; };")


def test_blocks_of_rows_give_exactly_lightgbms_probabilities(tiny_compiled_bundle, tiny_dataset):
    """Every tree runs over a block of 64 rows: row counts around the block size, missing
    values included, give the very doubles Booster.predict gives."""
    compiled = ModelBundle.load(tiny_compiled_bundle)
    reference = ModelBundle.load(tiny_compiled_bundle, predictor="lightgbm")
    matrix = _with_missing_values(encode_frame(tiny_dataset, compiled.encoder), 0.2)
    rows = np.concatenate([matrix] * (1 + 200 // len(matrix)))
    for n in (0, 1, 63, 64, 65, 128, 129, 200):
        expected = reference.booster.predict(rows[:n], num_threads=1)
        np.testing.assert_array_equal(compiled.predict_proba(rows[:n]), expected)


def test_a_model_whose_tree_has_no_split_is_compiled():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 2))
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 150},
        lgb.Dataset(x, label=x[:, 0] > 0.5),
        num_boost_round=3,
    )
    assert "num_leaves=1" in booster.model_to_string()
    if compile_mod.shutil.which(compile_mod.CC) is None:
        pytest.skip("no C compiler here")
    artifact = compile_mod.compile_predictor(booster.model_to_string())
    assert artifact is not None
    predictor = _load(artifact, 2)
    np.testing.assert_array_equal(predictor.predict(x), booster.predict(x, num_threads=1))


def test_every_native_source_of_the_scorer_is_copied_into_the_build(tmp_path):
    assert NATIVE_DIR.parts[-2:] == ("lambda_function", "native")
    source, build = tmp_path / "native", tmp_path / "src"
    source.mkdir()
    build.mkdir()
    for name in ("a.c", "b.c", "b.h", "notes.txt"):
        (source / name).write_text(f"/* {name} */\n")
    assert copy_native_sources(source, build) == ["a.c", "b.c", "b.h"]
    assert sorted(p.name for p in build.iterdir()) == ["a.c", "b.c", "b.h"]
    assert (build / "b.h").read_text() == "/* b.h */\n"


def test_a_native_source_may_not_replace_a_generated_one(tmp_path):
    source, build = tmp_path / "native", tmp_path / "src"
    source.mkdir()
    build.mkdir()
    (source / "main.c").write_text("int x;\n")
    (build / "main.c").write_text("/* generated */\n")
    with pytest.raises(CompileError, match="main.c"):
        copy_native_sources(source, build)
    assert (build / "main.c").read_text() == "/* generated */\n"


def test_max_glibc_reads_the_highest_version_named():
    assert max_glibc(b"\0GLIBC_2.2.5\0GLIBC_2.29\0GLIBC_2.3\0") == "GLIBC_2.29"
    assert max_glibc(b"no versions") is None


def test_without_a_compiler_the_export_has_no_compiled_predictor(
    tmp_path, tiny_bundle, monkeypatch, caplog
):
    from config.settings import Settings

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(compile_mod.shutil, "which", lambda name: None)
    settings = Settings.from_env({"MUSHROOM_REPO_ROOT": str(tmp_path)})
    with caplog.at_level(logging.INFO):
        local_dir, _ = export.export_bundle(ModelBundle.load(tiny_bundle), settings)
    assert "no compiled predictor: gcc not found" in caplog.text
    metadata = json.loads((local_dir / BUNDLE_METADATA_FILE).read_text())
    assert COMPILED_KEY not in metadata and sorted(metadata["files"]) == ["model.txt"]
    assert ModelBundle.load(local_dir).predictor.kind == "lightgbm"


def test_the_export_compiles_the_model(tmp_path, tiny_bundle, monkeypatch):
    from config.settings import Settings

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    if compile_mod.shutil.which(compile_mod.CC) is None:
        pytest.skip("no C compiler here")
    settings = Settings.from_env({"MUSHROOM_REPO_ROOT": str(tmp_path)})
    local_dir, _ = export.export_bundle(ModelBundle.load(tiny_bundle), settings)
    assert (local_dir / predictor_file_name(platform_tag())).is_file()
    assert ModelBundle.load(local_dir).predictor.kind == "compiled"
    assert ModelBundle.load(local_dir.parent / "champion").predictor.kind == "compiled"


def _negative_split_booster():
    """Two features, a split below zero, trained without NaN (missing type None)."""
    import lightgbm as lgb

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-10, -6, 500), rng.uniform(-4, 10, 500)])[:, None]
    return lgb.train(
        {"objective": "binary", "num_leaves": 4, "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(np.hstack([x, rng.uniform(0, 1, (1000, 1))]), label=(x[:, 0] > -5)),
        num_boost_round=5,
    )


def _load(artifact, n_features: int):
    from lambda_function.compiled import CompiledPredictor

    if artifact is None:
        pytest.skip("no C compiler here")
    return CompiledPredictor.from_verified_bytes(artifact.data, n_features, artifact.file_name)


def test_nan_reads_as_zero_where_lightgbm_reads_it_so():
    """LightGBM sends NaN where 0.0 goes at a numeric split of missing type None (here right,
    the split being below zero), not down the split's default branch."""
    booster = _negative_split_booster()
    predictor = _load(compile_mod.compile_predictor(booster.model_to_string()), 2)
    rows = np.array([[np.nan, 0.5], [0.0, 0.5], [-8.0, 0.5], [np.nan, np.nan]])
    expected = booster.predict(rows, num_threads=1)
    assert expected[0] == expected[1] != expected[2]  # NaN scores as 0.0 does
    np.testing.assert_allclose(predictor.predict(rows), expected, rtol=0, atol=1e-12)


def test_each_load_gets_its_own_library_after_another_was_dropped(tiny_compiled_bundle):
    """dlopen() hands back a loaded library of the same path name (/proc/self/fd/N): a second
    predictor must not get the first one's trees when the descriptor number comes again."""
    import gc

    first = ModelBundle.load(tiny_compiled_bundle).predictor
    assert first.n_features == 20
    del first
    gc.collect()
    booster = _negative_split_booster()
    second = _load(compile_mod.compile_predictor(booster.model_to_string()), 2)
    rows = np.array([[-8.0, 0.5], [3.0, 0.5]])
    np.testing.assert_array_equal(second.predict(rows), booster.predict(rows, num_threads=1))


def test_compiling_prints_no_treelite_version_notice_and_keeps_other_output(capfd):
    import lightgbm as lgb

    if compile_mod.shutil.which(compile_mod.CC) is None:
        pytest.skip("no C compiler here")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (200, 2))
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, label=x[:, 0] > 0.5),
        num_boost_round=3,
    )
    capfd.readouterr()
    assert compile_mod.compile_predictor(booster.model_to_string()) is not None
    out, err = capfd.readouterr()
    assert "Treelite version" not in err and "Parallel compilation" not in out, (out, err)
    assert out == "" and err == ""
    # Whatever else native code writes to stderr meanwhile still reaches it.
    with compile_mod._quiet_tl2cgen():
        os.write(2, b"a real native warning\n")
    assert capfd.readouterr().err == "a real native warning\n"


def test_the_filter_drops_only_the_version_notice():
    notice = (
        "[23:35:26] /x/serializer.cc:202: The model you are loading originated from a newer "
        "Treelite version; some functionalities may be unavailable.\n"
        "Currently running Treelite version 4.1.2\n"
        "The model checkpoint was generated from Treelite version 4.8.1\n"
    )
    text = "before\n" + notice + "after\n"
    assert compile_mod.TREELITE_VERSION_NOTICE.sub("", text) == "before\nafter\n"
