"""The misread-robust verdict: ``edible`` only if no single misread attribute hides poison.

A forager gets one attribute wrong now and then. A record the model and the guard call
``edible`` keeps that verdict only if no *variant* of it, differing in one attribute, would be
``poisonous`` (threshold and guard); otherwise its verdict becomes ``unknown`` and the output
record names the variant (``misread``: field and value). The variants of a record:

- every other valid code of one observed nominal attribute (not observed, null, stays null);
- every value of one measurement ``v`` in ``[0.8 v, 1.25 v]``: the values ``x`` whose reading
  ``x (1 +- 0.2)`` could be ``v``, and the values ``v (1 +- 0.2)``, both covered;
- a unit slip: ``10 v`` and ``0.1 v`` (each in a relative window of 1e-9, so that ``10 x``
  read back as ``x`` is covered despite rounding).

"Every value" is finite work: the model and the guard are constant between the trees' split
thresholds and the guard's bin edges, so the interval's distinct outcomes are those at its
ends, at each cut point inside it and at one value (the midpoint) of each gap between them
(``interval_points``). A variant the guard calls ``unknown`` does not block: it is not a
mushroom the model calls poisonous. A variant blocks when its P(poisonous) reaches the
threshold less ``MARGIN``, so that rounding can never make a blocking variant look safe.

``MisreadCheck.reference`` is the plain version: it materialises the variants and scores them
with any predictor (compiled trees, LightGBM or the parsed trees). The native version
(``native/misread.c``) walks only the trees a changed attribute can change, from the rows'
leaves as the compiled trees recorded them when it is given those (``check``'s ``leaves``),
and is tested equal to it.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from lambda_function.trees import ZERO_THRESHOLD, TreeEnsemble

#: A measurement misread by up to 20% either way: x read as v = x (1 +- 0.2) means
#: x in [v / 1.2, v / 0.8]; with v (1 +- 0.2) too, [0.8 v, 1.25 v].
RELATIVE_ERROR = 0.2
UNIT_SLIPS = (10.0, 0.1)
SLIP_WINDOW = 1e-9
#: A variant with P(poisonous) >= threshold - MARGIN blocks (ties and rounding never pass).
MARGIN = 1e-9
#: The intervals of a measurement's variants, as factors (low, high) of its value.
INTERVAL_FACTORS: tuple[tuple[float, float], ...] = (
    (1.0 - RELATIVE_ERROR, 1.0 / (1.0 - RELATIVE_ERROR)),
    *((s * (1.0 - SLIP_WINDOW), s * (1.0 + SLIP_WINDOW)) for s in UNIT_SLIPS),
)
NO_MISREAD = -1
MISREAD_ABI = 1
#: A nominal attribute's codes are a 64-bit set in the native check.
MAX_NATIVE_CODES = 64

_p, _i32, _i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64


class _NativeModel(ctypes.Structure):
    """``MisreadModel`` of native/misread.c: pointers into arrays this module keeps alive."""

    _fields_ = [
        ("n_features", _i32),
        ("n_trees", _i32),
        ("n_nodes", _i32),
        ("n_leaves", _i32),
        ("n_cat_bits", _i64),
        *((name, _p) for name in ("roots", "feature", "left", "right", "cat_start")),
        *((name, _p) for name in ("cat_words", "threshold", "leaf_value", "decision_type")),
        *((name, _p) for name in ("cat_bits", "left_codes", "node_max", "n_codes")),
        ("n_words", _i32),
        ("table_rows", _i64),
        ("n_edges", _i64),
        ("n_cuts", _i64),
        *((name, _p) for name in ("guard_offset", "guard_rows", "edge_offset", "edge_count")),
        *((name, _p) for name in ("table", "edges", "cut_offset", "cut_count", "cuts")),
        ("n_intervals", _i32),
        ("factors", _p),
        ("raw_cut", ctypes.c_double),
    ]


@dataclass(frozen=True)
class MisreadResult:
    """The robust verdict codes, and per row the blocking variant (feature -1: none)."""

    codes: np.ndarray  # int8, as model.verdict_codes, with blocked edible rows now unknown
    feature: np.ndarray  # int32 feature index of the blocking variant, or NO_MISREAD
    value: np.ndarray  # float64: its value (a nominal code's index, or the measurement)


def interval_points(low: float, high: float, cuts: np.ndarray) -> np.ndarray:
    """One value of each distinct outcome in ``[low, high]``: the ends, the cut points inside,
    and the midpoint of each gap between two of them; sorted, distinct."""
    low, high = min(low, high), max(low, high)  # a negative value's factors swap them
    inside = cuts[(cuts >= low) & (cuts <= high)]
    ends = np.unique(np.concatenate([[low], inside, [high]]))
    middles = (ends[:-1] + ends[1:]) / 2.0
    return np.unique(np.concatenate([ends, middles]))


def raw_cut(threshold: float) -> float:
    """The raw score from which a variant blocks: logit(threshold - MARGIN), clipped."""
    p = threshold - MARGIN
    if p <= 0.0:
        return -math.inf
    p = min(p, 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


class MisreadCheck:
    """Finds, for rows scored ``edible``, a single-attribute variant scored ``poisonous``."""

    def __init__(
        self,
        ensemble: TreeEnsemble,
        guard: Any,
        feature_order: Sequence[str],
        vocabularies: dict[str, Sequence[str]],
        threshold: float,
        library: Any = None,
    ):
        self.ensemble = ensemble
        self.guard = guard
        self.feature_order = tuple(feature_order)
        self.vocabularies = {k: tuple(v) for k, v in vocabularies.items()}
        self.threshold = float(threshold)
        # Per feature: the number of codes (nominal) or None (numeric), and the cut points of a
        # numeric feature: its split thresholds, its guard edges, and +-0 for LightGBM's zero test.
        self.n_codes: list[int | None] = []
        self.cuts: list[np.ndarray | None] = []
        for j, name in enumerate(self.feature_order):
            if name in self.vocabularies:
                self.n_codes.append(len(self.vocabularies[name]))
                self.cuts.append(None)
            else:
                edges = guard.edges[j] if guard.edges[j] is not None else np.empty(0)
                cuts = np.concatenate(
                    [
                        ensemble.numeric_thresholds(j),
                        np.asarray(edges, dtype=np.float64),
                        [-ZERO_THRESHOLD, ZERO_THRESHOLD],
                    ]
                )
                self.n_codes.append(None)
                self.cuts.append(np.unique(cuts))
        # Why the native check is not used (None: it is).
        self.native_unavailable_reason: str | None = "no compiled library"
        self._native: Any = None
        self._layout: Any = None
        if library is not None:
            self._native, self.native_unavailable_reason = self._bind(library)

    @property
    def kind(self) -> str:
        """``native`` or ``reference``: which implementation ``check`` runs."""
        return "native" if self._native is not None else "reference"

    @property
    def layout(self) -> str:
        """Where the native check's paths come from: ``at load`` (laid out once, this object
        keeps them), ``per call`` (a library built before that), or ``none`` (reference)."""
        if self._native is None:
            return "none"
        return "at load" if self._layout is not None else "per call"

    @property
    def reads_leaves(self) -> bool:
        """True when ``check`` can read the rows' leaves from the compiled trees (else it finds
        them itself: a library built before the trees recorded them)."""
        return self._layout is not None and self._layout[2] is not None

    def _bind(self, library: Any) -> tuple[Any, str | None]:
        """The native check of ``library`` configured with this model, or (None, why not)."""
        try:
            abi = library.mushroom_misread_abi
            function = library.mushroom_misread_check
        except AttributeError:
            return None, "the compiled library has no native misread check"
        abi.restype = _i32
        if abi() != MISREAD_ABI:
            return None, f"native misread check ABI {abi()}, this code reads {MISREAD_ABI}"
        if any(n is not None and n > MAX_NATIVE_CODES for n in self.n_codes):
            return None, f"a nominal attribute has more than {MAX_NATIVE_CODES} codes"
        function.restype = _i64
        function.argtypes = (_p, _p, _i64, _i32, _p, _p, _p)
        e, g = self.ensemble, self.guard
        n_words = g.n_words
        # The codes 0..63 that go left at each node (for the nodes on nominal attributes).
        nominal = np.array([n is not None for n in self.n_codes])[e.feature]
        nodes = np.flatnonzero(nominal)
        codes = np.arange(MAX_NATIVE_CODES, dtype=np.float64)
        goes = e.decide(np.repeat(nodes, len(codes)), np.tile(codes, len(nodes)))
        bits = np.left_shift(np.uint64(1), np.arange(MAX_NATIVE_CODES, dtype=np.uint64))
        left_codes = np.zeros(len(e.feature), dtype=np.uint64)
        left_codes[nodes] = np.bitwise_or.reduce(
            np.where(goes.reshape(len(nodes), len(codes)), bits, np.uint64(0)), axis=1
        )
        # The largest leaf value below each node (children before parents: repeat to a fixpoint).
        node_max = np.full(len(e.feature), -np.inf)
        for _ in range(len(e.feature) + 1):
            below = [
                np.where(c < 0, e.leaf_value[np.maximum(-c - 1, 0)], node_max[np.maximum(c, 0)])
                for c in (e.left, e.right)
            ]
            updated = np.maximum(*below)
            if np.array_equal(updated, node_max):
                break
            node_max = updated
        sizes = np.array([len(m) for m in g.masks], dtype=np.int64)
        numeric = [j for j, n in enumerate(self.n_codes) if n is None]
        edges = [
            np.asarray(g.edges[j] if j in numeric else [], dtype=np.float64)
            for j in range(len(self.n_codes))
        ]
        cuts = [c if c is not None else np.empty(0) for c in self.cuts]
        arrays = {
            "roots": e.roots.astype(np.int32),
            "feature": e.feature.astype(np.int32),
            "left": e.left.astype(np.int32),
            "right": e.right.astype(np.int32),
            "cat_start": e.cat_start.astype(np.int32),
            "cat_words": e.cat_words.astype(np.int32),
            "threshold": e.threshold.astype(np.float64),
            "leaf_value": e.leaf_value.astype(np.float64),
            "decision_type": e.decision_type.astype(np.uint8),
            "cat_bits": e.cat_bits.astype(np.uint32),
            "left_codes": left_codes,
            "node_max": node_max.astype(np.float64),
            "n_codes": np.array([n or 0 for n in self.n_codes], dtype=np.int32),
            "guard_offset": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
            "guard_rows": sizes,
            "edge_offset": np.concatenate([[0], np.cumsum([len(x) for x in edges])[:-1]]),
            "edge_count": np.array([len(x) for x in edges], dtype=np.int64),
            "table": np.ascontiguousarray(np.concatenate(g.masks), dtype=np.uint64),
            "edges": np.concatenate(edges).astype(np.float64),
            "cut_offset": np.concatenate([[0], np.cumsum([len(x) for x in cuts])[:-1]]),
            "cut_count": np.array([len(x) for x in cuts], dtype=np.int64),
            "cuts": np.concatenate(cuts).astype(np.float64),
            "factors": np.array(INTERVAL_FACTORS, dtype=np.float64).ravel(),
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        for key in ("edge_offset", "cut_offset"):
            arrays[key] = arrays[key].astype(np.int64)
        model = _NativeModel(
            n_features=len(self.n_codes),
            n_trees=e.n_trees,
            n_nodes=len(e.feature),
            n_leaves=len(e.leaf_value),
            n_cat_bits=len(e.cat_bits),
            n_words=n_words,
            table_rows=len(arrays["table"]),
            n_edges=len(arrays["edges"]),
            n_cuts=len(arrays["cuts"]),
            n_intervals=len(INTERVAL_FACTORS),
            raw_cut=raw_cut(self.threshold),
            **{k: v.ctypes.data for k, v in arrays.items()},
        )
        self._arrays = arrays  # the struct points into them
        self._layout = self._lay_out(library, model)
        return (function, model), None

    @staticmethod
    def _lay_out(library: Any, model: _NativeModel) -> Any:
        """The paths of every leaf laid out once, in a buffer this object keeps and passes to
        each check (``mushroom_misread_check_laid_out``, which verifies that it is this model's
        and unchanged); None when the library lays them out at each call instead (a bundle
        built before) or refuses the model (then the check refuses it too)."""
        try:
            size_of, lay_out, check = (
                library.mushroom_misread_layout_size,
                library.mushroom_misread_layout,
                library.mushroom_misread_check_laid_out,
            )
        except AttributeError:
            return None
        size_of.restype, size_of.argtypes = _i64, (_p,)
        lay_out.restype, lay_out.argtypes = _i32, (_p, _p, _i64)
        check.restype = _i64
        check.argtypes = (_p, _p, _i64, _p, _i64, _i32, _p, _p, _p)
        size = size_of(ctypes.byref(model))
        if size <= 0:
            return None
        buffer = np.zeros(size, dtype=np.uint8)  # numpy aligns it (the C side checks 8 bytes)
        if lay_out(ctypes.byref(model), buffer.ctypes.data, size) != 1:
            return None
        buffer.flags.writeable = False
        # The check that reads the rows' leaves from the compiled trees (a library built
        # before they recorded them has none: the check then finds the leaves itself).
        with_leaves = getattr(library, "mushroom_misread_check_leaves", None)
        if with_leaves is not None:
            with_leaves.restype = _i64
            with_leaves.argtypes = (_p, _p, _i64, _p, _i64, _i32, _p, _p, _i32, _p, _p)
        return check, buffer, with_leaves

    def check(
        self,
        matrix: np.ndarray,
        codes: np.ndarray,
        predict: Callable[[np.ndarray], np.ndarray],
        leaves: np.ndarray | None = None,
    ) -> MisreadResult:
        """The robust codes of scored rows: natively when the library has the check, else
        ``reference`` (with ``predict``). ``leaves``: each row's leaf in each tree as the
        compiled trees recorded them (``NativeScorer.score_with_leaves``), read instead of
        walking the trees when the library can (each is checked to be a leaf of its tree)."""
        if self._native is None or not np.any(codes == 0):
            return self.reference(matrix, codes, predict)
        function, model = self._native
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        robust = np.array(codes, dtype=np.int8, copy=True)
        feature = np.empty(len(robust), dtype=np.int32)
        value = np.empty(len(robust), dtype=np.float64)
        scored = (rows.ctypes.data, rows.shape[0], rows.shape[1], robust.ctypes.data)
        found = (feature.ctypes.data, value.ctypes.data)
        if self._layout is not None:
            laid_out, layout, with_leaves = self._layout
            laid = (ctypes.byref(model), layout.ctypes.data, layout.size)
            if (
                with_leaves is not None
                and leaves is not None
                and leaves.dtype == np.int32
                and leaves.flags.c_contiguous
                and leaves.shape == (rows.shape[0], self.ensemble.n_trees)
            ):
                status = with_leaves(*laid, *scored, leaves.ctypes.data, leaves.shape[1], *found)
            else:
                status = laid_out(*laid, *scored, *found)
        else:
            status = function(ctypes.byref(model), *scored, *found)
        if status < 0:  # an inconsistent model: the reference decides (never a silent pass)
            return self.reference(matrix, codes, predict)
        return MisreadResult(robust, feature, value)

    def variants(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row's single-attribute variants in checking order: (feature, value) arrays."""
        features: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for j, n_codes in enumerate(self.n_codes):
            x = row[j]
            if math.isnan(x):
                continue  # not observed: stays so
            if n_codes is not None:
                codes = np.arange(n_codes, dtype=np.float64)
                found = codes[codes != x]
            else:
                cuts = self.cuts[j]
                assert cuts is not None
                found = np.concatenate(
                    [interval_points(x * lo, x * hi, cuts) for lo, hi in INTERVAL_FACTORS]
                )
            features.append(np.full(len(found), j, dtype=np.int32))
            values.append(found)
        if not features:
            return np.empty(0, dtype=np.int32), np.empty(0)
        return np.concatenate(features), np.concatenate(values)

    def reference(
        self,
        matrix: np.ndarray,
        codes: np.ndarray,
        predict: Callable[[np.ndarray], np.ndarray],
    ) -> MisreadResult:
        """The check by brute force over the materialised variants of the ``edible`` rows
        (``codes == 0``), scored with ``predict`` (P(poisonous) of a matrix) and the guard."""
        codes = np.asarray(codes, dtype=np.int8).copy()
        feature = np.full(len(codes), NO_MISREAD, dtype=np.int32)
        value = np.zeros(len(codes))
        edible = np.flatnonzero(codes == 0)
        if not len(edible):
            return MisreadResult(codes, feature, value)
        owners, blocks = [], []
        for i in edible.tolist():
            f, v = self.variants(matrix[i])
            block = np.repeat(matrix[i][None, :], len(f), axis=0)
            block[np.arange(len(f)), f] = v
            owners.append(np.full(len(f), i))
            blocks.append((block, f, v))
        variants = np.concatenate([b[0] for b in blocks])
        var_feature = np.concatenate([b[1] for b in blocks])
        var_value = np.concatenate([b[2] for b in blocks])
        owner = np.concatenate(owners)
        p = predict(variants) if len(variants) else np.empty(0)
        blocking = self.guard.compatible(variants) & (p >= self.threshold - MARGIN)
        hits = np.flatnonzero(blocking)
        # The first blocking variant of each row, in checking order.
        rows, first = np.unique(owner[hits], return_index=True)
        codes[rows] = 2
        feature[rows] = var_feature[hits[first]]
        value[rows] = var_value[hits[first]]
        return MisreadResult(codes, feature, value)

    def describe(self, feature: int, value: float) -> dict[str, Any] | None:
        """The output record's ``misread`` field: ``{"field", "value"}`` or None."""
        if feature < 0:
            return None
        name = self.feature_order[feature]
        if self.n_codes[feature] is not None:
            return {"field": name, "value": self.vocabularies[name][int(value)]}
        return {"field": name, "value": float(value)}
