"""Exact TreeSHAP contributions by table lookup, for ensembles of small trees.

Path-dependent TreeSHAP values of one tree for a row depend on the row only through the
direction it takes at each internal node of that tree (left or right, every node, not only the
nodes on its own path): the algorithm follows the row's direction at nodes whose feature is in
the coalition and averages both children by cover otherwise. A tree with K internal nodes
therefore has at most 2**K distinct contribution vectors. For the course model (175 trees of depth
3, K <= 7) that is at most 128 per tree: this module asks XGBoost itself (`pred_contribs` on the
one-tree slice of the booster) for the contributions of one row realising each feasible direction
pattern, groups them per form field, and keeps them in a table. Explaining a batch is then one
comparison of the batch against every split threshold, the directions packed into one pattern
byte per (row, tree), and a gather-and-sum over the trees. Building the table is a one-off cost
(~1 s for the course model: one `pred_contribs` call per tree).

Exactness: the table holds XGBoost's own numbers, and the directions use XGBoost's rule (value <
threshold goes left; a missing value, NaN, goes the node's default way). Tests compare it with
`pred_contribs` on the whole dataset and on rows sitting exactly on split thresholds.
Supported: "gbtree" binary models with numerical splits and at most 8 internal nodes per tree
(depth <= 3). `unsupported_reason` says why any other booster is not; callers then use
`pred_contribs` directly.
"""

import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

SLOTS = 8  # internal nodes per tree that one pattern byte can hold
PATTERNS = 1 << SLOTS
CHUNK_ROWS = 256  # rows per lookup pass: keeps the (trees, rows, groups) gather in cache
BY_SLOT_ROWS = 20  # from this many rows, patterns are computed slot by slot (the crossover)
_GATHER_BITS = np.uint64(0x0102040810204080)
_BIT_WEIGHTS = (1 << np.arange(SLOTS)).astype(np.uint8)


def _trees(booster: xgb.Booster) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    model = json.loads(bytes(booster.save_raw("json")))
    learner = model["learner"]
    return learner, learner["gradient_booster"].get("model", {}).get("trees", [])


def unsupported_reason(booster: xgb.Booster) -> str | None:
    """Why this booster cannot be tabulated (None when it can)."""
    learner, trees = _trees(booster)
    booster_kind = learner["gradient_booster"].get("name")
    if booster_kind != "gbtree":
        return f"booster type {booster_kind!r} (only gbtree)"
    params = learner["learner_model_param"]
    if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) > 1:
        return "more than one output"
    if not trees:
        return "no trees"
    for index, tree in enumerate(trees):
        if any(int(kind) != 0 for kind in tree["split_type"]):
            return f"tree {index} has categorical splits"
        internal = sum(1 for child in tree["left_children"] if child != -1)
        if internal > SLOTS:
            return f"tree {index} has {internal} internal nodes (at most {SLOTS})"
    return None


@dataclass(frozen=True)
class ContributionTable:
    """Per (tree, direction pattern): the tree's contributions grouped by `grouping`."""

    slot_features: npt.NDArray[np.intp]  # (trees * SLOTS,) feature index of each node slot
    slot_thresholds: npt.NDArray[np.float32]  # (trees * SLOTS,) -inf for an empty slot
    slot_default_left: npt.NDArray[np.bool_]  # (trees * SLOTS,) direction of a missing value
    tree_offsets: npt.NDArray[np.intp]  # (trees,) tree * PATTERNS
    table: npt.NDArray[np.float32]  # (trees * PATTERNS, groups)
    bias: float  # the ensemble's expected margin: XGBoost's pred_contribs bias column

    @property
    def n_trees(self) -> int:
        return len(self.tree_offsets)

    @classmethod
    def build(cls, booster: xgb.Booster, grouping: npt.NDArray[np.float32]) -> "ContributionTable":
        """Tabulates `booster` (which must be supported); `grouping` is (n_features, groups)."""
        reason = unsupported_reason(booster)
        if reason is not None:
            raise ValueError(f"cannot tabulate this booster: {reason}")
        _, trees = _trees(booster)
        n_features = grouping.shape[0]
        slot_features = np.zeros((len(trees), SLOTS), dtype=np.intp)
        # An empty slot compares value < -inf: always False, so its bit is always 0 (NaN: the
        # default direction, also set to False below).
        slot_thresholds = np.full((len(trees), SLOTS), -np.inf, dtype=np.float32)
        slot_default_left = np.zeros((len(trees), SLOTS), dtype=bool)
        table = np.zeros((len(trees) * PATTERNS, grouping.shape[1]), dtype=np.float32)
        for t, tree in enumerate(trees):
            internal = [i for i, child in enumerate(tree["left_children"]) if child != -1]
            k = len(internal)
            slot_features[t, :k] = [int(tree["split_indices"][i]) for i in internal]
            slot_thresholds[t, :k] = [np.float32(tree["split_conditions"][i]) for i in internal]
            slot_default_left[t, :k] = [bool(tree["default_left"][i]) for i in internal]
            patterns, rows = _realising_rows(
                slot_features[t, :k], slot_thresholds[t, :k], n_features
            )
            raw = booster[t : t + 1].predict(xgb.DMatrix(rows, nthread=1), pred_contribs=True)
            table[t * PATTERNS + patterns] = raw[:, :n_features] @ grouping
        probe = np.zeros((1, n_features), dtype=np.float32)
        bias = float(booster.predict(xgb.DMatrix(probe, nthread=1), pred_contribs=True)[0, -1])
        return cls(
            slot_features=slot_features.ravel(),
            slot_thresholds=slot_thresholds.ravel(),
            slot_default_left=slot_default_left.ravel(),
            tree_offsets=np.arange(len(trees), dtype=np.intp) * PATTERNS,
            table=table,
            bias=bias,
        )

    def patterns(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """(rows, trees): bit k of a tree's byte is 1 when the row goes left at its k-th node."""
        return self.tree_patterns(features).T

    def tree_patterns(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """`patterns` laid out (trees, rows), as `lookup` gathers them. Two ways to the same
        bytes: row by row for a few rows (fewer NumPy calls), slot by slot from BY_SLOT_ROWS
        rows on (`.venv/bin/pytest bench/test_explain.py --benchmark-only -k patterns`)."""
        if len(features) < BY_SLOT_ROWS:
            return self._patterns_by_row(features).T
        return self._patterns_by_slot(features)

    def _patterns_by_row(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        values = np.take(features, self.slot_features, axis=1)  # C-contiguous (rows, slots)
        left = values < self.slot_thresholds
        if np.isnan(features).any():  # checked on the narrow matrix: 29 values a row, not 1,400
            left |= np.isnan(values) & self.slot_default_left
        if sys.byteorder != "little":
            return np.packbits(left.reshape(-1), bitorder="little").reshape(len(left), -1)
        # Each tree's 8 direction bytes (0/1) read as one little-endian uint64; multiplying by
        # 0x0102040810204080 moves byte k's bit to bit 56 + k without carries: the top byte is
        # the pattern. ~10x faster than np.packbits along an axis.
        words = left.view(np.uint64)
        return ((words * _GATHER_BITS) >> np.uint64(56)).astype(np.uint8)

    def _patterns_by_slot(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        # Columns first: gathering whole feature columns is a copy of contiguous runs, where
        # gathering 1,400 slots out of each 29-value row is not (7x slower a row).
        columns = np.ascontiguousarray(features.T)
        values = np.take(columns, self.slot_features, axis=0)  # (slots, rows)
        left = values < self.slot_thresholds[:, None]
        if np.isnan(features).any():
            left |= np.isnan(values) & self.slot_default_left[:, None]
        bits = left.view(np.uint8).reshape(self.n_trees, SLOTS, len(features))
        # Byte k of a tree's pattern weighs 2**k: a weighted sum over the slot axis (at most
        # 255, exact in uint8).
        return np.einsum("tkr,k->tr", bits, _BIT_WEIGHTS, dtype=np.uint8)

    def lookup(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(rows, groups) contributions of a float32 (rows, n_features) matrix."""
        n = len(features)
        out = np.empty((n, self.table.shape[1]), dtype=np.float32)
        for start in range(0, n, CHUNK_ROWS):
            chunk = features[start : start + CHUNK_ROWS]
            # (trees, rows) table indices: the gather then yields one (rows, groups) slab per
            # tree, and summing slabs is a contiguous reduction.
            index = self.tree_patterns(chunk) + self.tree_offsets[:, None]
            out[start : start + len(chunk)] = np.take(self.table, index, axis=0).sum(axis=0)
        return out


def _realising_rows(
    features: npt.NDArray[np.intp], thresholds: npt.NDArray[np.float32], n_features: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """For one tree's internal nodes: every feasible direction pattern and one float32 row that
    takes exactly those directions (patterns needing value < a and value >= b with b >= a on
    the same feature cannot occur and are skipped)."""
    k = len(features)
    patterns = np.arange(1 << k, dtype=np.intp)
    left = (patterns[:, None] >> np.arange(k)) & 1 == 1  # (patterns, k)
    low = np.full((len(patterns), n_features), -np.inf, dtype=np.float32)  # value >= low
    high = np.full((len(patterns), n_features), np.inf, dtype=np.float32)  # value < high
    for slot in range(k):
        feature, threshold = features[slot], thresholds[slot]
        goes_left = left[:, slot]
        high[goes_left, feature] = np.minimum(high[goes_left, feature], threshold)
        low[~goes_left, feature] = np.maximum(low[~goes_left, feature], threshold)
    feasible = np.all(low < high, axis=1)
    below_high = np.nextafter(high, np.float32(-np.inf))
    rows = np.where(
        np.isfinite(low), low, np.where(np.isfinite(high), below_high, np.float32(0))
    ).astype(np.float32)
    return patterns[feasible], np.ascontiguousarray(rows[feasible])
