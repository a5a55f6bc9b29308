"""The native scorer of a compiled bundle (guard, grouping, trees, threshold) gives exactly what
``ModelBundle.score_codes`` gives in numpy, refuses every value it cannot turn into an index,
and keeps no state outside its own context."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_function.compiled import CompiledPredictorError, NativeScorer
from lambda_function.model import ModelBundle

_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> ModelBundle:
    """The tiny model's bundle with its compiled predictor and native scorer (built once)."""
    from tests.conftest import _tiny_model
    from tests.conftest import make_tiny_dataset as dataset
    from training.compile import compile_predictor

    bundle = _tiny_model(dataset())
    artifact = compile_predictor(bundle.model_text)
    if artifact is None:
        pytest.fail("gcc is needed to build the compiled predictor (apt-get install gcc)")
    directory = bundle.save(tmp_path_factory.mktemp("scorer") / "bundle", compiled=[artifact])
    loaded = ModelBundle.load(directory)
    assert loaded.predictor.kind == "compiled" and loaded.scorer is not None
    return loaded


@pytest.fixture(scope="module")
def base(compiled) -> np.ndarray:
    from tests.conftest import make_tiny_dataset
    from training.features import encode_frame

    return encode_frame(make_tiny_dataset(), compiled.encoder)


def _numpy_score(bundle: ModelBundle, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scorer, bundle.scorer = bundle.scorer, None
    try:
        return bundle.score_codes(matrix)
    finally:
        bundle.scorer = scorer


def _scorer(bundle: ModelBundle, threshold: float | None = None, masks=None) -> NativeScorer:
    guard = bundle.guard
    return NativeScorer(
        bundle.predictor.library,
        bundle.encoder.feature_order,
        guard.kinds,
        guard.edges,
        guard.masks if masks is None else masks,
        bundle.threshold if threshold is None else threshold,
    )


def _odd_rows(compiled: ModelBundle, base: np.ndarray, data: st.DataObject) -> np.ndarray:
    """Rows of the data with values changed: nominal codes, NaN, numeric values at, just below
    and above the guard's edges, beyond every edge."""
    n = data.draw(st.integers(1, 40))
    rows = base[data.draw(st.lists(st.integers(0, len(base) - 1), min_size=n, max_size=n))].copy()
    edges = [e for e in compiled.guard.edges if e is not None]
    special = [np.nan, 0.0, 1e300, np.inf, *np.concatenate(edges).tolist()]
    for _ in range(data.draw(st.integers(0, 3 * n))):
        i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, rows.shape[1] - 1))
        if compiled.guard.kinds[j] == "nominal":
            size = compiled.guard.masks[j].shape[0] - 1  # the vocabulary's codes
            rows[i, j] = data.draw(st.sampled_from([np.nan, *map(float, range(size))]))
        else:
            value = data.draw(st.sampled_from(special))
            rows[i, j] = data.draw(
                st.sampled_from([value, np.nextafter(value, -np.inf), np.nextafter(value, np.inf)])
            )
    return rows


@settings(_SETTINGS, max_examples=150)
@given(data=st.data())
def test_native_scoring_equals_the_guard_and_predictor_in_python(compiled, base, data):
    """Guard (codes, missing rows, numeric bins: values at, just below and above the edges,
    NaN, beyond every edge), grouping, trees and threshold: the same doubles and codes."""
    rows = _odd_rows(compiled, base, data)
    p, codes = compiled.scorer.score(rows)
    expected_p, expected_codes = _numpy_score(compiled, rows)
    assert p.tobytes() == expected_p.tobytes()
    assert codes.tolist() == expected_codes.tolist()


@settings(_SETTINGS, max_examples=100)
@given(data=st.data())
def test_the_leaves_recorded_while_scoring_are_the_trees_leaves(compiled, base, data):
    """With the rows' leaves (rows grouped by species, leaves back in the rows' order): the
    same doubles and codes as without, and each row's leaf in each tree as trees.py finds it."""
    from lambda_function.trees import parse_model

    rows = _odd_rows(compiled, base, data)
    assert compiled.scorer.n_trees == compiled.n_trees
    p, codes, leaves = compiled.scorer.score_with_leaves(rows)
    expected_p, expected_codes = compiled.scorer.score(rows)
    assert p.tobytes() == expected_p.tobytes() and codes.tolist() == expected_codes.tolist()
    assert leaves.dtype == np.int32 and leaves.flags.c_contiguous
    np.testing.assert_array_equal(leaves, parse_model(compiled.model_text).leaves(rows))


def test_the_robust_verdicts_read_the_leaves_and_are_the_same(compiled, base):
    """score_robust hands the recorded leaves to the misread check: the same verdicts,
    attributes and values as the check that walks the trees itself."""
    check = compiled.misread
    assert check.reads_leaves and compiled.records_leaves
    given = []
    original = check.check
    check.check = lambda *args: given.append(args[3]) or original(*args)  # type: ignore
    try:
        p, robust = compiled.score_robust(base)
    finally:
        del check.check
    assert (
        len(given) == 1 and given[0] is not None and given[0].shape == (len(base), compiled.n_trees)
    )
    expected_p, codes = compiled.score_codes(base)
    walked = check.check(base, codes, compiled.predict_proba)
    assert p.tobytes() == expected_p.tobytes()
    for name in ("codes", "feature", "value"):
        np.testing.assert_array_equal(getattr(robust, name), getattr(walked, name))


def test_the_bundle_scores_natively_and_the_same(compiled, base):
    p, codes = compiled.score_codes(base)
    expected_p, expected_codes = _numpy_score(compiled, base)
    assert p.tobytes() == expected_p.tobytes() and codes.tolist() == expected_codes.tolist()
    assert set(codes.tolist()) >= {0, 1}
    empty_p, empty_codes = compiled.scorer.score(base[:0])
    assert empty_p.shape == empty_codes.shape == (0,)


def test_values_at_every_guard_edge_score_the_same(compiled, base):
    """Every fourth row with each numeric feature set to each guard edge (and the doubles
    either side): the bins, hence the masks and verdicts, of numpy's searchsorted."""
    batches = []
    for j, edges in enumerate(compiled.guard.edges):
        if edges is None:
            continue
        for edge in edges:
            for value in (np.nextafter(edge, -np.inf), edge, np.nextafter(edge, np.inf)):
                rows = base[::4].copy()
                rows[:, j] = value
                batches.append(rows)
    matrix = np.concatenate(batches)
    p, codes = compiled.scorer.score(matrix)
    expected_p, expected_codes = _numpy_score(compiled, matrix)
    assert codes.tolist() == expected_codes.tolist()
    assert p.tobytes() == expected_p.tobytes()
    assert 0 < np.count_nonzero(codes == 2) < len(codes)  # both sides of the edges are met


@pytest.mark.parametrize("value", [-1.0, -0.5, 0.5, "size", 1e300, -np.inf, np.inf, -1e-300])
def test_a_value_that_is_no_code_is_refused_with_its_row_and_column(compiled, base, value):
    """Out of range, negative or fractional: refused before it becomes a table row (the decoder
    never writes one; reading it would be out of bounds)."""
    j = compiled.guard.kinds.index("nominal")
    if value == "size":
        value = float(compiled.guard.masks[j].shape[0] - 1)  # one past the last code
    rows = base[:5].copy()
    rows[3, j] = value
    name = compiled.encoder.feature_order[j]
    with pytest.raises(ValueError, match=rf"^row 3: {name} = .* is no code of its vocabulary$"):
        compiled.scorer.score(rows)
    with pytest.raises(ValueError, match="no code"):
        compiled.score_codes(rows)  # the bundle does not fall back to a lenient path


def test_a_matrix_of_another_width_is_refused(compiled, base):
    with pytest.raises(ValueError, match="columns"):
        compiled.scorer.score(base[:, :-1])


def test_a_malformed_guard_is_refused_at_creation(compiled):
    guard = compiled.guard
    nominal = guard.kinds.index("nominal")
    numeric = guard.kinds.index("numeric")
    library = compiled.predictor.library
    names = compiled.encoder.feature_order
    with pytest.raises(CompiledPredictorError, match="every column"):
        NativeScorer(library, names, guard.kinds[:-1], guard.edges, guard.masks, 0.5)
    short = list(guard.masks)
    short[numeric] = short[numeric][:-1]  # edges + 1 bins expected
    with pytest.raises(CompiledPredictorError, match="refused the species guard"):
        NativeScorer(library, names, guard.kinds, guard.edges, short, 0.5)
    unsorted = list(guard.edges)
    unsorted[numeric] = unsorted[numeric][::-1]
    with pytest.raises(CompiledPredictorError, match="refused the species guard"):
        NativeScorer(library, names, guard.kinds, unsorted, guard.masks, 0.5)
    for threshold in (np.nan, -0.1, 1.5):
        with pytest.raises(CompiledPredictorError, match="refused the species guard"):
            NativeScorer(library, names, guard.kinds, guard.edges, guard.masks, threshold)
    assert guard.edges[nominal] is None


def test_scorers_of_one_library_keep_their_own_guard_and_threshold(compiled, base):
    """No global state: a second scorer created in the same library (another threshold, a guard
    that knows no species) changes nothing for the first, even while it scores."""
    expected_p, expected_codes = compiled.scorer.score(base)
    strict = _scorer(compiled, threshold=0.0)
    no_species = _scorer(compiled, masks=[np.zeros_like(m) for m in compiled.guard.masks])
    assert set(strict.score(base)[1].tolist()) <= {1, 2}
    assert set(no_species.score(base)[1].tolist()) == {2}

    results, errors = [], []

    def score_many(scorer: NativeScorer) -> None:
        try:
            for _ in range(30):
                results.append((scorer is compiled.scorer, scorer.score(base)))
        except Exception as exc:  # reported below
            errors.append(exc)

    def churn() -> None:  # scorers created and freed while the others score
        for _ in range(30):
            _scorer(compiled, threshold=1.0).score(base[:3])

    threads = [threading.Thread(target=score_many, args=(s,)) for s in (compiled.scorer, strict)]
    threads.append(threading.Thread(target=churn))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 60
    for is_bundle_scorer, (p, codes) in results:
        assert p.tobytes() == expected_p.tobytes()
        if is_bundle_scorer:
            assert codes.tolist() == expected_codes.tolist()
        else:
            assert set(codes.tolist()) <= {1, 2}


def test_a_library_without_the_native_scorer_scores_in_numpy(
    compiled, base, tiny_compiled_bundle, monkeypatch
):
    """The guard in numpy and the compiled trees: the same results, the reason kept."""
    from lambda_function import model

    class NoScorer:
        def __init__(self, library):
            self.library = library

        def __getattr__(self, name):
            if name.startswith("mushroom_scorer_"):
                raise AttributeError(name)
            return getattr(self.library, name)

    real = model.NativeScorer
    monkeypatch.setattr(model, "NativeScorer", lambda lib, *a: real(NoScorer(lib), *a))
    loaded = ModelBundle.load(tiny_compiled_bundle)
    assert loaded.predictor.kind == "compiled" and loaded.scorer is None
    assert "no native scorer" in loaded.scorer_unavailable_reason
    p, codes = loaded.score_codes(base)
    expected_p, expected_codes = compiled.score_codes(base)
    assert p.tobytes() == expected_p.tobytes() and codes.tolist() == expected_codes.tolist()


def test_a_library_whose_trees_record_no_leaves_is_served_the_same(
    compiled, base, tiny_compiled_bundle, monkeypatch
):
    """A bundle compiled before the trees recorded their leaves: the check finds them itself,
    with the same verdicts."""
    from lambda_function import model

    class NoLeaves:
        def __init__(self, library):
            self.library = library

        def __getattr__(self, name):
            if name in ("mushroom_scorer_score_leaves", "mushroom_num_tree"):
                raise AttributeError(name)
            return getattr(self.library, name)

    real = model.NativeScorer
    monkeypatch.setattr(model, "NativeScorer", lambda lib, *a: real(NoLeaves(lib), *a))
    loaded = ModelBundle.load(tiny_compiled_bundle)
    assert loaded.scorer is not None and loaded.scorer.n_trees is None
    assert not loaded.records_leaves
    assert loaded.score_with_leaves(base)[2] is None
    p, robust = loaded.score_robust(base)
    expected_p, expected = compiled.score_robust(base)
    assert p.tobytes() == expected_p.tobytes()
    assert robust.codes.tolist() == expected.codes.tolist()
    assert robust.feature.tolist() == expected.feature.tolist()


_UBSAN_CHILD = """
import sys
import numpy as np
from lambda_function.model import ModelBundle
from tests.conftest import make_tiny_dataset
from training.features import encode_frame

bundle = ModelBundle.load(sys.argv[1])
assert bundle.scorer is not None
base = encode_frame(make_tiny_dataset(), bundle.encoder)
odd = np.array([np.nan, np.inf, -np.inf, -0.0, 1e308, -1e308, 5e-324, -1.0, 0.5, 2.0**63, 64.0])
rng = np.random.default_rng(0)
anything = np.where(rng.random(base.shape) < 0.5, rng.choice(odd, size=base.shape), base)
bundle.predictor.predict(anything)  # the trees read any double
numeric = [j for j, kind in enumerate(bundle.guard.kinds) if kind == "numeric"]
rows = base.copy()
rows[:, numeric] = rng.choice(odd, size=(len(rows), len(numeric)))
bundle.scorer.score(rows)  # the guard's bins of any double
bundle.score_robust(rows)  # the same, with the leaves recorded and read by the misread check
nominal = bundle.guard.kinds.index("nominal")
for value in odd[1:]:
    rows = base[:7].copy()
    rows[3, nominal] = value
    try:
        bundle.scorer.score(rows)
    except ValueError:
        pass
    else:
        assert value == 0.0 or (value >= 0 and value == int(value) and value < 64), value
print("clean")
"""


def test_odd_values_do_not_reach_undefined_behaviour(tmp_path, monkeypatch):
    """The library built with UBSan in trap mode (no runtime: any undefined behaviour it
    detects, a float-to-integer overflow included, is an illegal instruction) scores NaN,
    infinities, huge, tiny, negative and fractional values, in a child process that must end
    cleanly."""
    import subprocess
    import sys

    from tests.conftest import _tiny_model, make_tiny_dataset
    from training import compile as compile_mod

    ubsan = ("-fsanitize=undefined,float-cast-overflow", "-fsanitize-undefined-trap-on-error")
    monkeypatch.setattr(compile_mod, "CFLAGS", (*compile_mod.CFLAGS, *ubsan))
    bundle = _tiny_model(make_tiny_dataset())
    artifact = compile_mod.compile_predictor(bundle.model_text)
    assert artifact is not None, "gcc with UBSan is needed"
    directory = bundle.save(tmp_path / "ubsan", compiled=[artifact])
    result = subprocess.run(
        [sys.executable, "-c", _UBSAN_CHILD, str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and result.stdout.strip() == "clean", result.stderr[-2000:]
