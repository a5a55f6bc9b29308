"""The misread check, one rule at a time, on hand-written trees (reference and native alike)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lambda_function import schema
from lambda_function.misread import INTERVAL_FACTORS, MisreadCheck, interval_points
from lambda_function.model import FeatureEncoder, ModelBundle, SpeciesGuard
from lambda_function.service import ScoringService
from lambda_function.trees import TreeEnsemble, parse_model
from lambda_function.writer import InMemoryWriter
from tests.fakes.scorer import kinesis_event, valid_record

ENCODER = FeatureEncoder.from_schema()
CAP = schema.FEATURE_NAMES.index("cap_diameter")
SHAPE = schema.FEATURE_NAMES.index("cap_shape")
SPACING = schema.FEATURE_NAMES.index("gill_spacing")
N_FEATURES = len(schema.FEATURE_NAMES)


def model_text(*trees: dict) -> str:
    """A LightGBM model.txt of hand-written trees: each a dict of the node arrays."""
    header = (
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
        f"max_feature_idx={N_FEATURES - 1}\nobjective=binary sigmoid:1\n"
    )
    blocks = []
    for t, tree in enumerate(trees):
        lines = [f"Tree={t}", f"num_leaves={len(tree['leaf_value'])}"]
        for key in ("split_feature", "threshold", "decision_type", "left_child", "right_child"):
            lines.append(f"{key}=" + " ".join(str(v) for v in tree[key]))
        lines.append("leaf_value=" + " ".join(str(v) for v in tree["leaf_value"]))
        if "cat_threshold" in tree:
            lines.append("cat_boundaries=" + " ".join(str(v) for v in tree["cat_boundaries"]))
            lines.append("cat_threshold=" + " ".join(str(v) for v in tree["cat_threshold"]))
        lines.append("shrinkage=1")
        blocks.append("\n".join(lines) + "\n")
    return header + "\n" + "\n".join(blocks) + "\nend of trees\n"


def numeric_band(feature: int, low: float, high: float) -> dict:
    """Poisonous (+5) exactly when low < x <= high, edible (-5) elsewhere."""
    return {
        "split_feature": [feature, feature],
        "threshold": [low, high],
        "decision_type": [2, 2],
        "left_child": [-1, -2],
        "right_child": [1, -3],
        "leaf_value": [-5, 5, -5],
    }


def poisonous_code(feature: int, code: int) -> dict:
    """Poisonous (+5) exactly when the nominal feature has ``code``, else edible (-5)."""
    return {
        "split_feature": [feature],
        "threshold": [0],
        "decision_type": [9],  # categorical, missing type NaN
        "left_child": [-1],
        "right_child": [-2],
        "leaf_value": [5, -5],
        "cat_boundaries": [0, 1],
        "cat_threshold": [1 << code],
    }


def guard(species_codes: list[dict[int, int]] | None = None) -> SpeciesGuard:
    """Every value known (one species); or species given by their nominal codes
    (feature -> code), every other value of theirs known."""
    species_codes = species_codes or [{}]
    n = len(species_codes)
    kinds, edges, masks = [], [], []
    for j, name in enumerate(ENCODER.feature_order):
        if name in ENCODER.vocabularies:
            n_codes = len(ENCODER.vocabularies[name])
            mask = np.zeros((n_codes + 1, 1), dtype=np.uint64)
            for s, codes in enumerate(species_codes):
                rows = [codes[j]] if j in codes else range(n_codes + 1)
                for row in rows:
                    mask[row, 0] |= np.uint64(1 << s)
            kinds.append("nominal")
            edges.append(None)
        else:
            mask = np.full((1, 1), (1 << n) - 1, dtype=np.uint64)
            kinds.append("numeric")
            edges.append(np.empty(0))
        masks.append(mask)
    return SpeciesGuard(n_species=n, kinds=kinds, edges=edges, masks=masks)


def row(**values: float) -> np.ndarray:
    """A matrix of one row: code 0 / 1.0 everywhere, NaN never, but for ``values``."""
    x = np.array([0.0 if f in ENCODER.vocabularies else 5.0 for f in ENCODER.feature_order])
    for name, value in values.items():
        x[schema.FEATURE_NAMES.index(name)] = value
    return x[None, :]


@pytest.fixture(scope="module")
def native_library(_tiny_compiled_source):
    """The compiled library of a bundle (it carries native/misread.c)."""
    return ModelBundle.load(_tiny_compiled_source).predictor.library


@pytest.fixture(params=["reference", "native"])
def run(request):
    """Check one matrix with a model, a guard and a threshold: (codes, misread per row)."""

    def check(text: str, species_guard: SpeciesGuard, matrix: np.ndarray, threshold=0.5):
        ensemble = parse_model(text)
        library = request.getfixturevalue("native_library") if request.param == "native" else None
        checker = MisreadCheck(
            ensemble, species_guard, ENCODER.feature_order, ENCODER.vocabularies, threshold, library
        )
        assert checker.kind == request.param, checker.native_unavailable_reason
        p = ensemble.predict(matrix)
        known = species_guard.compatible(matrix)
        codes = np.where(known, (p >= threshold).astype(np.int8), 2).astype(np.int8)
        result = checker.check(matrix, codes, ensemble.predict)
        return result.codes.tolist(), [
            checker.describe(int(f), float(v)) for f, v in zip(result.feature, result.value)
        ]

    return check


def test_a_nominal_swap_to_a_poisonous_code_makes_edible_unknown(run):
    text = model_text(poisonous_code(SPACING, 1))
    codes, misread = run(text, guard(), np.vstack([row(gill_spacing=0), row(gill_spacing=1)]))
    assert codes == [2, 1]  # edible -> unknown; the poisonous row stays poisonous
    assert misread == [
        {"field": "gill_spacing", "value": ENCODER.vocabularies["gill_spacing"][1]},
        None,
    ]


def test_a_row_with_no_dangerous_variant_stays_edible(run):
    # Only cap_diameter in (40, 41] is poisonous: 5 cm is far from it, even slipped (0.5, 50).
    codes, misread = run(model_text(numeric_band(CAP, 40.0, 41.0)), guard(), row(cap_diameter=5))
    assert (codes, misread) == ([0], [None])


def test_a_threshold_strictly_inside_the_interval_is_found(run):
    # Poisonous only for 10 < x <= 10.5: both ends of [0.8 * 9, 1.25 * 9] = [7.2, 11.25] are
    # edible; a check of the ends alone would call 9 cm edible.
    text = model_text(numeric_band(CAP, 10.0, 10.5))
    assert parse_model(text).predict(row(cap_diameter=7.2))[0] < 0.5
    assert parse_model(text).predict(row(cap_diameter=11.25))[0] < 0.5
    codes, misread = run(text, guard(), row(cap_diameter=9.0))
    assert codes == [2]
    assert misread[0]["field"] == "cap_diameter" and 10.0 < misread[0]["value"] <= 10.5


@pytest.mark.parametrize(
    "value, blocked",
    [(8.0, False), (8.01, True), (12.5, True), (12.6, False)],
)
def test_the_interval_is_point_eight_to_one_point_two_five_of_the_value(run, value, blocked):
    # Poisonous for 10 < x <= 10.0000001: reachable from v when 0.8 v <= 10.0000001 and
    # 1.25 v > 10, i.e. v in (8, 12.5000001].
    text = model_text(numeric_band(CAP, 10.0, 10.0000001))
    codes, _ = run(text, guard(), row(cap_diameter=value))
    assert codes == [2 if blocked else 0]


@pytest.mark.parametrize("value, slipped", [(12.0, 120.0), (1500.0, 150.0)])
def test_a_unit_slip_is_a_variant(run, value, slipped):
    # Poisonous only in (100, 200]: 12 cm read for 120, or 1500 for 150 (x10 / x0.1).
    codes, misread = run(
        model_text(numeric_band(CAP, 100.0, 200.0)), guard(), row(cap_diameter=value)
    )
    assert codes == [2]
    assert misread[0]["field"] == "cap_diameter"
    assert misread[0]["value"] == pytest.approx(slipped, rel=1e-8)


def test_a_variant_the_guard_calls_unknown_does_not_block(run):
    # Two species: (gill_spacing 0, cap_shape 0) and (gill_spacing 1, cap_shape 1). The swap
    # 0 -> 1 of gill_spacing alone is poisonous but unlike both: it does not block.
    text = model_text(poisonous_code(SPACING, 1))
    two = guard([{SPACING: 0, SHAPE: 0}, {SPACING: 1, SHAPE: 1}])
    codes, misread = run(text, two, row(gill_spacing=0, cap_shape=0))
    assert (codes, misread) == ([0], [None])
    # With one species that has both spacings, the same swap blocks.
    codes, _ = run(text, guard([{SHAPE: 0}]), row(gill_spacing=0, cap_shape=0))
    assert codes == [2]


def with_known_ranges(species_guard: SpeciesGuard, feature: int, *ranges: tuple[float, float]):
    """``species_guard`` with the measurement ``feature`` known only in the sorted, disjoint
    ranges [low, high)."""
    everyone = np.uint64((1 << species_guard.n_species) - 1)
    edges, masks = list(species_guard.edges), list(species_guard.masks)
    edges[feature] = np.array([edge for r in ranges for edge in r])
    masks[feature] = np.array([[0]] + [[everyone], [0]] * len(ranges), dtype=np.uint64)
    return SpeciesGuard(species_guard.n_species, list(species_guard.kinds), edges, masks)


@pytest.mark.parametrize(
    "known, blocked",
    [((5.8, 6.1), False), ((5.2, 5.5), False), ((5.6, 6.1), True), ((5.7, 5.72), True)],
)
def test_the_guard_decides_inside_a_poisonous_piece_of_an_interval(run, known, blocked):
    # Poisonous only for 5.5 < x <= 5.75, within [0.8 * 5, 1.25 * 5] = [4, 6.25]; the guard
    # knows 4.9 <= x < 5.1 (the row) and ``known``. The trees reach the cut in that piece, so
    # the guard's edges inside it decide: the native pre-check on the trees' own cut points
    # must not skip it, and a variant the guard calls unknown must not block.
    text = model_text(numeric_band(CAP, 5.5, 5.75))
    species_guard = with_known_ranges(guard(), CAP, (4.9, 5.1), known)
    codes, misread = run(text, species_guard, row(cap_diameter=5.0))
    assert codes == [2 if blocked else 0]
    if blocked:
        value = misread[0]["value"]
        assert 5.5 < value <= 5.75 and known[0] <= value < known[1]


def test_an_unobserved_attribute_stays_unobserved(run):
    # NaN (not observed) goes right (edible) at the split; it is not varied into code 1.
    text = model_text(poisonous_code(SPACING, 1))
    codes, misread = run(text, guard(), row(gill_spacing=math.nan))
    assert (codes, misread) == ([0], [None])


def test_only_edible_rows_are_changed():
    text = model_text(poisonous_code(SPACING, 1))
    matrix = np.vstack([row(gill_spacing=0)] * 3)
    ensemble = parse_model(text)
    checker = MisreadCheck(ensemble, guard(), ENCODER.feature_order, ENCODER.vocabularies, 0.5)
    result = checker.check(matrix, np.array([0, 1, 2], dtype=np.int8), ensemble.predict)
    assert result.codes.tolist() == [2, 1, 2] and result.feature.tolist()[1:] == [-1, -1]


def test_a_tie_with_the_threshold_blocks(run):
    # A variant exactly at the threshold is poisonous (p >= threshold): never edible.
    text = model_text({**poisonous_code(SPACING, 1), "leaf_value": [0.0, -5]})
    codes, _ = run(text, guard(), row(gill_spacing=0), threshold=0.5)
    assert codes == [2]


def test_interval_points_cover_every_piece():
    cuts = np.array([1.0, 2.0, 3.0, 10.0])
    points = interval_points(1.5, 3.0, cuts)
    # 1.5, (1.5, 2) -> 1.75, 2, (2, 3) -> 2.5, 3
    assert points.tolist() == [1.5, 1.75, 2.0, 2.5, 3.0]
    assert interval_points(0.0, 0.0, cuts).tolist() == [0.0]
    assert INTERVAL_FACTORS[0] == (0.8, 1.25)


def test_the_service_writes_the_misread_field_and_the_unknown_verdict():
    text = model_text(poisonous_code(SPACING, 1))
    ensemble = parse_model(text)

    class TreesPredictor:
        kind = "trees"
        predict = staticmethod(ensemble.predict)

    bundle = ModelBundle(
        model_text=text, predictor=TreesPredictor(), encoder=ENCODER, guard=guard(), threshold=0.5
    )
    safe = {**valid_record(), "mushroom_id": "a", "gill_spacing": None}
    risky = {**valid_record(), "mushroom_id": "b", "gill_spacing": "c"}
    assert ENCODER.vocabularies["gill_spacing"].index("c") != 1
    writer = InMemoryWriter()
    payloads = [json.dumps(record).encode() for record in (safe, risky)]
    ScoringService(bundle, writer).score_records(kinesis_event(payloads)["Records"])
    outputs = [json.loads(data) for _, _, data in writer.records]
    assert [o["verdict"] for o in outputs] == ["edible", "unknown"]
    assert "misread" not in outputs[0]  # consumers that ignore it see the same record
    spacing = ENCODER.vocabularies["gill_spacing"][1]
    assert outputs[1]["misread"] == {"field": "gill_spacing", "value": spacing}


STEM_WIDTH = schema.FEATURE_NAMES.index("stem_width")
THRESHOLDS = (-1.0, 0.0, 1.0, 4.0, 4.5, 5.0, 5.5, 6.0, 6.25, 8.0, 50.0, 60.0)


def random_tree(rng: np.random.Generator, n_splits: int) -> dict:
    """A random tree of ``n_splits`` splits over two measurements and two nominal attributes:
    numeric splits of every missing type, categorical ones, the same attribute split again
    below itself (what the native bound follows along a path)."""
    nodes: list[list] = []
    leaves: list[float] = []
    bitsets: list[int] = []

    def grow(budget: int) -> int:
        if budget == 0:
            leaves.append(float(rng.normal(0.0, 2.0)))
            return -len(leaves)
        at = len(nodes)
        feature = int(rng.choice([CAP, STEM_WIDTH, SHAPE, SPACING]))
        if feature in (SHAPE, SPACING):
            n_codes = len(ENCODER.vocabularies[ENCODER.feature_order[feature]])
            bitsets.append(int(rng.integers(1, 1 << n_codes)))
            nodes.append([feature, len(bitsets) - 1, 1 | (2 << 2), 0, 0])
        else:
            missing, default_left = int(rng.integers(0, 3)), int(rng.integers(0, 2))
            threshold = float(rng.choice(THRESHOLDS)) + float(rng.choice([0.0, 0.01]))
            nodes.append([feature, threshold, (missing << 2) | (default_left << 1), 0, 0])
        left = int(rng.integers(0, budget))
        nodes[at][3] = grow(left)
        nodes[at][4] = grow(budget - 1 - left)
        return at

    grow(n_splits)
    tree = {
        "split_feature": [n[0] for n in nodes],
        "threshold": [n[1] for n in nodes],
        "decision_type": [n[2] for n in nodes],
        "left_child": [n[3] for n in nodes],
        "right_child": [n[4] for n in nodes],
        "leaf_value": leaves,
    }
    if bitsets:
        tree["cat_boundaries"] = list(range(len(bitsets) + 1))
        tree["cat_threshold"] = bitsets
    return tree


def random_guard(rng: np.random.Generator, n_species: int = 3) -> SpeciesGuard:
    """Random species masks of the four attributes the trees split on: per code, per bin of
    the measurements (random edges among the trees' thresholds and between them)."""
    base = guard([{}] * n_species)
    edges, masks = list(base.edges), list(base.masks)
    for j in (CAP, STEM_WIDTH):
        edges[j] = np.unique(rng.choice(np.arange(-2.0, 70.0, 0.25), size=12, replace=False))
    for j in (CAP, STEM_WIDTH, SHAPE, SPACING):
        rows = len(edges[j]) + 1 if base.kinds[j] == "numeric" else masks[j].shape[0]
        masks[j] = rng.integers(0, 1 << n_species, size=(rows, 1)).astype(np.uint64)
        masks[j][rng.random(rows) < 0.5] = (1 << n_species) - 1
    return SpeciesGuard(n_species, list(base.kinds), edges, masks)


def random_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    matrix = np.vstack([row()] * n)
    for j in (CAP, STEM_WIDTH):
        matrix[:, j] = rng.choice(THRESHOLDS, n) * rng.choice([0.8, 1.0, 1.25], n) + 0.1
        matrix[rng.random(n) < 0.1, j] = rng.choice([0.0, -3.0, 1e-36, 0.1, 600.0])
    for j in (SHAPE, SPACING):
        n_codes = len(ENCODER.vocabularies[ENCODER.feature_order[j]])
        matrix[:, j] = rng.integers(0, n_codes, n)
    matrix[rng.random(matrix.shape) < 0.08] = np.nan
    return matrix


@pytest.mark.parametrize("seed", range(12))
def test_the_native_check_equals_the_reference_on_random_trees(native_library, seed):
    # Random forests, guards and rows (NaN, zero, negative values, slips far away): the native
    # check, its bound along the rows' paths included, finds the same first blocking variant as
    # the brute force over every variant, and it answers itself (no fallback to the reference).
    rng = np.random.default_rng(seed)
    trees = [random_tree(rng, int(rng.integers(0, 9))) for _ in range(int(rng.integers(1, 7)))]
    ensemble = parse_model(model_text(*trees))
    species_guard, matrix = random_guard(rng), random_rows(rng, 300)
    p = ensemble.predict(matrix)
    for threshold in np.minimum(np.quantile(p, [0.2, 0.5, 0.8]) + 1e-6, 1.0).tolist():
        known = species_guard.compatible(matrix)
        codes = np.where(known, (p >= threshold).astype(np.int8), 2).astype(np.int8)
        assert (codes == 0).any()
        checks = [
            MisreadCheck(
                ensemble, species_guard, ENCODER.feature_order, ENCODER.vocabularies, threshold, lib
            )
            for lib in (native_library, None)
        ]
        assert [c.kind for c in checks] == ["native", "reference"]
        checks[0].reference = None  # a native failure would fall back to it: fail loudly instead
        native = checks[0].check(matrix, codes, ensemble.predict)
        plain = checks[1].check(matrix, codes, ensemble.predict)
        np.testing.assert_array_equal(native.codes, plain.codes)
        np.testing.assert_array_equal(native.feature, plain.feature)
        np.testing.assert_array_equal(native.value, plain.value)


def test_trees_that_share_a_node_are_refused_natively_and_checked_by_the_reference(
    native_library,
):
    # Two roots naming the same tree: no forest. The native check refuses the model (its
    # paths are laid out per tree), and the reference answers instead: the same verdicts.
    from dataclasses import replace

    ensemble = parse_model(model_text(poisonous_code(SPACING, 1), numeric_band(CAP, 10.0, 10.5)))
    shared = replace(ensemble, roots=np.array([ensemble.roots[0], ensemble.roots[0]], np.int32))
    matrix = np.vstack([row(gill_spacing=0), row(gill_spacing=2, cap_diameter=9.0)])
    checker = MisreadCheck(
        shared, guard(), ENCODER.feature_order, ENCODER.vocabularies, 0.5, native_library
    )
    assert checker.kind == "native"
    calls = []
    reference = checker.reference
    checker.reference = lambda *args: calls.append(1) or reference(*args)
    codes = np.zeros(2, dtype=np.int8)
    result = checker.check(matrix, codes, shared.predict)
    assert calls == [1]
    assert (
        result.codes.tolist() == reference(matrix, codes, shared.predict).codes.tolist() == [2, 2]
    )


class LibraryWithoutLayout:
    """A bundle library built before the paths were laid out at load: the per-call check only."""

    def __init__(self, library):
        self.mushroom_misread_abi = library.mushroom_misread_abi
        self.mushroom_misread_check = library.mushroom_misread_check


def random_case(seed: int) -> tuple[TreeEnsemble, SpeciesGuard, np.ndarray, float, np.ndarray]:
    """Random trees, guard and 300 rows, a threshold at the median P(poisonous), and the rows'
    verdict codes: (ensemble, guard, matrix, threshold, codes)."""
    rng = np.random.default_rng(seed)
    trees = [random_tree(rng, int(rng.integers(0, 9))) for _ in range(int(rng.integers(1, 7)))]
    ensemble = parse_model(model_text(*trees))
    species_guard, matrix = random_guard(rng), random_rows(rng, 300)
    p = ensemble.predict(matrix)
    threshold = float(min(np.quantile(p, 0.5) + 1e-6, 1.0))
    known = species_guard.compatible(matrix)
    codes = np.where(known, (p >= threshold).astype(np.int8), 2).astype(np.int8)
    return ensemble, species_guard, matrix, threshold, codes


@pytest.mark.parametrize("seed", range(4))
def test_the_check_laid_out_at_load_equals_the_check_laid_out_per_call(native_library, seed):
    # The paths laid out once (kept by the check, passed to each call) give the same codes,
    # attributes and values as a library that lays them out at each call (an older bundle's).
    ensemble, species_guard, matrix, threshold, codes = random_case(100 + seed)
    checks = [
        MisreadCheck(
            ensemble, species_guard, ENCODER.feature_order, ENCODER.vocabularies, threshold, lib
        )
        for lib in (native_library, LibraryWithoutLayout(native_library))
    ]
    assert [c.kind for c in checks] == ["native", "native"]
    assert [c.layout for c in checks] == ["at load", "per call"]
    reference = MisreadCheck(
        ensemble, species_guard, ENCODER.feature_order, ENCODER.vocabularies, threshold, None
    )
    assert reference.layout == "none"
    for c in checks:
        c.reference = None  # a native failure would fall back to it: fail loudly instead
    laid_out, per_call = (c.check(matrix, codes, ensemble.predict) for c in checks)
    np.testing.assert_array_equal(laid_out.codes, per_call.codes)
    np.testing.assert_array_equal(laid_out.feature, per_call.feature)
    np.testing.assert_array_equal(laid_out.value, per_call.value)


@pytest.mark.parametrize("seed", range(4))
def test_the_check_reading_the_rows_leaves_equals_the_check_finding_them(native_library, seed):
    # The rows' leaves as the compiled trees record them (here trees.py's, which the compiled
    # trees are tested to equal) give the same codes, attributes and values as the check that
    # walks the trees for them, and as the reference.
    ensemble, species_guard, matrix, threshold, codes = random_case(200 + seed)

    def checker(library):
        return MisreadCheck(
            ensemble, species_guard, ENCODER.feature_order, ENCODER.vocabularies, threshold, library
        )

    native, reference = checker(native_library), checker(None)
    assert native.reads_leaves and not reference.reads_leaves
    assert not checker(LibraryWithoutLayout(native_library)).reads_leaves
    native.reference = None  # a native failure would fall back to it: fail loudly instead
    leaves = ensemble.leaves(matrix).astype(np.int32)
    read, walked = native.check(matrix, codes, ensemble.predict, leaves), native.check(
        matrix, codes, ensemble.predict
    )
    expected = reference.check(matrix, codes, ensemble.predict)
    for result in (read, walked):
        np.testing.assert_array_equal(result.codes, expected.codes)
        np.testing.assert_array_equal(result.feature, expected.feature)
        np.testing.assert_array_equal(result.value, expected.value)


@pytest.mark.parametrize("bad", ["another tree's leaf", "past the last leaf", "negative"])
def test_leaves_that_are_not_the_rows_trees_are_refused(native_library, bad):
    # Each leaf given must be one of its own tree's: anything else and the native check
    # refuses the call (never an index out of bounds), and the reference answers instead.
    ensemble = parse_model(model_text(poisonous_code(SPACING, 1), numeric_band(CAP, 10.0, 10.5)))
    checker = MisreadCheck(
        ensemble, guard(), ENCODER.feature_order, ENCODER.vocabularies, 0.5, native_library
    )
    matrix = np.vstack([row(gill_spacing=0), row(gill_spacing=2, cap_diameter=9.0)])
    codes = np.zeros(2, dtype=np.int8)
    leaves = ensemble.leaves(matrix).astype(np.int32)
    assert checker.check(matrix, codes, ensemble.predict, leaves).codes.tolist() == [2, 2]
    calls = []
    reference = checker.reference
    checker.reference = lambda *args: calls.append(1) or reference(*args)
    assert checker.check(matrix, codes, ensemble.predict, leaves).codes.tolist() == [2, 2]
    assert calls == []
    other_tree = int(ensemble.leaves(matrix)[1, 1])
    leaves[1, 0] = {
        "another tree's leaf": other_tree,
        "past the last leaf": len(ensemble.leaf_value),
        "negative": -1,
    }[bad]
    assert checker.check(matrix, codes, ensemble.predict, leaves).codes.tolist() == [2, 2]
    assert calls == [1]


def test_leaves_of_another_shape_or_type_are_not_read(native_library):
    # Leaves that cannot be the rows' (another shape, not int32): the check finds them itself.
    ensemble = parse_model(model_text(poisonous_code(SPACING, 1), numeric_band(CAP, 10.0, 10.5)))
    checker = MisreadCheck(
        ensemble, guard(), ENCODER.feature_order, ENCODER.vocabularies, 0.5, native_library
    )
    checker.reference = None  # neither is a failure: no fallback
    matrix = np.vstack([row(gill_spacing=0), row(gill_spacing=2, cap_diameter=9.0)])
    codes = np.zeros(2, dtype=np.int8)
    leaves = ensemble.leaves(matrix)
    for odd in (leaves, leaves[:1].astype(np.int32), np.full((2, 5), -7, dtype=np.int32)):
        assert checker.check(matrix, codes, ensemble.predict, odd).codes.tolist() == [2, 2]


def test_a_layout_of_another_model_or_changed_since_is_refused(native_library):
    # The layout names the model it was laid out from (a hash of its arrays) and its own bytes
    # (a hash): the same sizes with another threshold, or one byte changed, and the native
    # check refuses the call (-1), so the reference answers instead.
    import ctypes

    def checker(high: float) -> MisreadCheck:
        text = model_text(poisonous_code(SPACING, 1), numeric_band(CAP, 10.0, high))
        return MisreadCheck(
            parse_model(text),
            guard(),
            ENCODER.feature_order,
            ENCODER.vocabularies,
            0.5,
            native_library,
        )

    mine, other = checker(10.5), checker(11.0)
    laid_out, layout, _ = mine._layout
    _, model = mine._native
    matrix = np.ascontiguousarray(np.vstack([row(gill_spacing=0), row(cap_diameter=9.0)]))

    def call(buffer: np.ndarray) -> int:
        codes = np.zeros(2, dtype=np.int8)
        feature, value = np.empty(2, dtype=np.int32), np.empty(2)
        return laid_out(
            ctypes.byref(model),
            buffer.ctypes.data,
            buffer.size,
            matrix.ctypes.data,
            2,
            N_FEATURES,
            codes.ctypes.data,
            feature.ctypes.data,
            value.ctypes.data,
        )

    assert call(layout) == 2  # both rows blocked: its own layout serves
    assert other._layout[1].size == layout.size
    assert call(other._layout[1]) == -1
    for at in (0, 64, layout.size // 2, layout.size - 1):  # header, nodes, paths, gains
        changed = layout.copy()
        changed[at] ^= 1
        assert call(changed) == -1
    assert call(layout[: layout.size - 8].copy()) == -1
