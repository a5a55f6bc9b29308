"""The trees of a LightGBM ``model.txt`` as flat arrays, evaluated with LightGBM's own rules.

The misread check (``misread.py``) needs the trees themselves (which thresholds split a
measurement, which tree reads which feature), and the Lambda may not have LightGBM: a package
with a compiled predictor serves bundles without it. So ``model.txt`` (the bundle's verified
file) is parsed here, with the standard library and numpy only.

Nodes of all trees are numbered globally; a child ``c >= 0`` is an internal node, ``c < 0`` the
leaf ``-c - 1`` (global leaf numbering). LightGBM's decision rules (``tree.h``), replicated by
``decide`` and tested against ``Booster.predict``:

- numeric split: missing type None turns NaN into 0; missing type Zero sends |x| <= 1e-35, and
  NaN, the default way; missing type NaN sends NaN the default way; else ``x <= threshold``
  goes left;
- categorical split: NaN or a negative value goes right; else the integer code goes left when
  its bit is set in the node's bitset (``cat_boundaries``/``cat_threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORICAL_MASK = 1
DEFAULT_LEFT_MASK = 2
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
ZERO_THRESHOLD = 1e-35


class TreeModelError(ValueError):
    """``model.txt`` is not a binary LightGBM model this code can evaluate."""


@dataclass(frozen=True)
class TreeEnsemble:
    """The trees of a binary LightGBM model; see the module docstring for the numbering."""

    n_features: int
    roots: np.ndarray  # (n_trees,) int32: the root of each tree, in the child encoding
    feature: np.ndarray  # (n_nodes,) int32
    threshold: np.ndarray  # (n_nodes,) float64
    decision_type: np.ndarray  # (n_nodes,) uint8
    left: np.ndarray  # (n_nodes,) int32, child encoding
    right: np.ndarray  # (n_nodes,) int32
    cat_start: np.ndarray  # (n_nodes,) int32: first word of a categorical node's bitset
    cat_words: np.ndarray  # (n_nodes,) int32: its number of 32-bit words (0: numeric node)
    cat_bits: np.ndarray  # (n_words,) uint32: every bitset, concatenated
    leaf_value: np.ndarray  # (n_leaves,) float64
    node_tree: np.ndarray  # (n_nodes,) int32: the tree each node belongs to
    sigmoid: float = 1.0

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def is_categorical(self) -> np.ndarray:
        return (self.decision_type & CATEGORICAL_MASK).astype(bool)

    def numeric_thresholds(self, feature: int) -> np.ndarray:
        """Sorted distinct thresholds of the numeric splits on ``feature``."""
        nodes = (self.feature == feature) & ~self.is_categorical()
        return np.unique(self.threshold[nodes])

    def decide(self, nodes: np.ndarray, values: np.ndarray) -> np.ndarray:
        """True where ``values`` (the node's feature's values) go left at ``nodes``."""
        dt = self.decision_type[nodes]
        missing = (dt >> 2) & 3
        default_left = (dt & DEFAULT_LEFT_MASK).astype(bool)
        is_nan = np.isnan(values)
        # Numeric rule.
        x = np.where(is_nan & (missing != MISSING_NAN), 0.0, values)
        to_default = ((missing == MISSING_ZERO) & (np.abs(x) <= ZERO_THRESHOLD)) | (
            (missing == MISSING_NAN) & is_nan
        )
        with np.errstate(invalid="ignore"):
            numeric_left = np.where(to_default, default_left, x <= self.threshold[nodes])
        # Categorical rule.
        categorical = (dt & CATEGORICAL_MASK).astype(bool)
        # static_cast<int>: truncation, so (-1, 0) is code 0; huge values go right here.
        with np.errstate(invalid="ignore"):
            outside = is_nan | (values <= -1.0) | (values >= 2.0**31)
        codes = np.where(outside, -1, np.trunc(np.where(outside, 0, values))).astype(np.int64)
        word = np.where(codes >= 0, codes // 32, 0)
        in_range = (codes >= 0) & (word < self.cat_words[nodes])
        index = np.where(in_range, self.cat_start[nodes] + word, 0)
        bits = self.cat_bits[index] if len(self.cat_bits) else np.zeros(len(index), np.uint32)
        cat_left = in_range & (((bits >> (codes % 32).clip(0).astype(np.uint32)) & 1) == 1)
        return np.where(categorical, cat_left, numeric_left)

    def leaves(self, matrix: np.ndarray) -> np.ndarray:
        """``(n_rows, n_trees)`` global leaf index of each row in each tree."""
        matrix = np.asarray(matrix, dtype=np.float64)
        n = matrix.shape[0]
        out = np.empty((n, self.n_trees), dtype=np.int64)
        rows = np.arange(n)
        for t, root in enumerate(self.roots.tolist()):
            node = np.full(n, root, dtype=np.int64)
            active = node >= 0
            while active.any():
                idx = np.flatnonzero(active)
                at = node[idx]
                go_left = self.decide(at, matrix[rows[idx], self.feature[at]])
                node[idx] = np.where(go_left, self.left[at], self.right[at])
                active[idx] = node[idx] >= 0
            out[:, t] = -node - 1
        return out

    def raw_score(self, matrix: np.ndarray) -> np.ndarray:
        """The sum of the leaf values of each row, summed in tree order as LightGBM does."""
        leaves = self.leaves(matrix)
        raw = np.zeros(leaves.shape[0])
        for t in range(self.n_trees):
            raw += self.leaf_value[leaves[:, t]]
        return raw

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(positive class), as ``Booster.predict``."""
        return 1.0 / (1.0 + np.exp(-self.sigmoid * self.raw_score(matrix)))


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()] if text.strip() else []


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split()] if text.strip() else []


def parse_model(text: str) -> TreeEnsemble:
    """The trees of ``model.txt``; TreeModelError when it is not a binary model of this kind."""
    header, _, body = text.partition("\nTree=")
    fields = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    objective = fields.get("objective", "").split()
    if not objective or objective[0] != "binary":
        raise TreeModelError(f"objective {fields.get('objective')!r} is not binary")
    if fields.get("num_tree_per_iteration", "1") != "1" or fields.get("num_class", "1") != "1":
        raise TreeModelError("a binary model has one tree per iteration")
    sigmoid = 1.0
    for part in objective[1:]:
        if part.startswith("sigmoid:"):
            sigmoid = float(part.split(":", 1)[1])
    try:
        n_features = int(fields["max_feature_idx"]) + 1
    except (KeyError, ValueError) as exc:
        raise TreeModelError(f"no max_feature_idx in the header: {exc}") from exc
    body = body.split("\nend of trees", 1)[0]
    blocks = ("Tree=" + body).split("\nTree=") if body else []
    roots, feature, threshold, dtype, left, right = [], [], [], [], [], []
    cat_start, cat_words, cat_bits, leaf_value, node_tree = [], [], [], [], []
    for t, block in enumerate(blocks):
        tree = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        try:
            n_leaves = int(tree["num_leaves"])
            leaves = _floats(tree["leaf_value"])
            node_base, leaf_base = len(feature), len(leaf_value)
            if n_leaves == 1:
                roots.append(-leaf_base - 1)
                leaf_value.extend(leaves[:1])
                continue
            sf = _ints(tree["split_feature"])
            th = _floats(tree["threshold"])
            dt = _ints(tree["decision_type"])
            lc, rc = _ints(tree["left_child"]), _ints(tree["right_child"])
            boundaries = _ints(tree.get("cat_boundaries", ""))
            bitsets = _ints(tree.get("cat_threshold", ""))
            shrinkage_ok = "shrinkage" in tree
        except (KeyError, ValueError) as exc:
            raise TreeModelError(f"tree {t} is malformed: {exc}") from exc
        n_internal = n_leaves - 1
        if not shrinkage_ok or len(leaves) != n_leaves:
            raise TreeModelError(f"tree {t}: {len(leaves)} leaf values for {n_leaves} leaves")
        if not all(len(a) == n_internal for a in (sf, th, dt, lc, rc)):
            raise TreeModelError(f"tree {t}: node arrays do not have {n_internal} entries")
        roots.append(node_base)
        for k in range(n_internal):
            if not 0 <= sf[k] < n_features:
                raise TreeModelError(f"tree {t} node {k}: feature {sf[k]} out of range")
            for child in (lc[k], rc[k]):
                if not (-n_leaves <= child < n_internal) or child == 0:
                    raise TreeModelError(f"tree {t} node {k}: child {child} out of range")
            feature.append(sf[k])
            threshold.append(th[k])
            dtype.append(dt[k] & 0xFF)
            left.append(lc[k] + node_base if lc[k] >= 0 else lc[k] - leaf_base)
            right.append(rc[k] + node_base if rc[k] >= 0 else rc[k] - leaf_base)
            node_tree.append(t)
            if dt[k] & CATEGORICAL_MASK:
                index = int(th[k])
                if not 0 <= index < len(boundaries) - 1:
                    raise TreeModelError(f"tree {t} node {k}: category set {index} missing")
                lo, hi = boundaries[index], boundaries[index + 1]
                if not 0 <= lo <= hi <= len(bitsets):
                    raise TreeModelError(f"tree {t} node {k}: category set out of range")
                cat_start.append(len(cat_bits) + lo)
                cat_words.append(hi - lo)
            else:
                cat_start.append(0)
                cat_words.append(0)
        cat_bits.extend(bitsets)
        leaf_value.extend(leaves)
    if not roots:
        raise TreeModelError("the model has no trees")
    return TreeEnsemble(
        n_features=n_features,
        roots=np.asarray(roots, dtype=np.int32),
        feature=np.asarray(feature, dtype=np.int32),
        threshold=np.asarray(threshold, dtype=np.float64),
        decision_type=np.asarray(dtype, dtype=np.uint8),
        left=np.asarray(left, dtype=np.int32),
        right=np.asarray(right, dtype=np.int32),
        cat_start=np.asarray(cat_start, dtype=np.int32),
        cat_words=np.asarray(cat_words, dtype=np.int32),
        cat_bits=np.asarray(cat_bits, dtype=np.uint32),
        leaf_value=np.asarray(leaf_value, dtype=np.float64),
        node_tree=np.asarray(node_tree, dtype=np.int32),
        sigmoid=sigmoid,
    )
