"""Input drift: the Population Stability Index of each form field over a window of recent rows.

    PSI = sum over bins of (q - p) * ln(q / p)

with p the training share of a bin (features/distributions.py) and q its share in the window.
Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 a population the model was not
trained on. A share of zero on either side would make a term infinite, so every share is
floored at `epsilon` (default 1e-4) before the sum: a bin the training data never saw that now
holds 10% of the window adds about (0.1 - 1e-4) * ln(0.1 / 1e-4) = 0.69.

The monitor is fed the encoded float32 feature matrix each scoring call already has. `update`
only copies those rows into a ring buffer of the last `window_rows` rows (O(rows), no binning,
~1-2 µs for one row: cheap enough for every request); binning happens in `psi()`, on demand
(a metrics scrape), over the whole window at once. Bin counts do not depend on row order, so the
ring's content is the window as it is. Numeric fields are binned with np.searchsorted on their
column; categorical fields from their one-hot columns (one matrix product for all of them), with
one extra bin for rows that set none of a field's columns (a category the model has no column
for); its training share is the summed share of such categories (0 for this model).
Thread-safe: one lock around the ring.
"""

import math
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from features.distributions import (
    CategoricalDistribution,
    FieldDistribution,
    NumericDistribution,
    bin_numeric,
)
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS

DEFAULT_EPSILON = 1e-4


def psi(
    expected: npt.NDArray[np.float64], counts: npt.NDArray[np.integer], epsilon: float
) -> float:
    """PSI of observed bin counts against expected shares (NaN for no rows)."""
    total = counts.sum()
    if total == 0:
        return math.nan
    observed = np.maximum(counts / total, epsilon)
    expected = np.maximum(expected, epsilon)
    return float(np.sum((observed - expected) * np.log(observed / expected)))


class DriftMonitor:
    def __init__(
        self,
        distributions: Mapping[str, FieldDistribution],
        feature_names: Sequence[str],
        *,
        window_rows: int = 10_000,
        epsilon: float = DEFAULT_EPSILON,
    ) -> None:
        if window_rows < 1:
            raise ValueError("window_rows must be at least 1")
        self.window_rows = window_rows
        self.epsilon = epsilon
        position = {name: i for i, name in enumerate(feature_names)}
        self._numeric: list[tuple[str, int, npt.NDArray[np.float64]]] = []
        self.expected: dict[str, npt.NDArray[np.float64]] = {}
        for field in NUMERIC_FIELDS:
            numeric = distributions[field]
            if not isinstance(numeric, NumericDistribution):
                raise ValueError(f"{field}: a numeric distribution is expected")
            self._numeric.append((field, position[field], numeric.edges))
            self.expected[field] = numeric.shares
        # selector[column, j] = 1 + the slot of the column's category among field j's categories
        # that have a column; slot 0 (no column set) is the last bin.
        self._selector = np.zeros((len(feature_names), len(CATEGORICAL_FIELDS)), dtype=np.float32)
        self._category_bins: list[int] = []
        for j, field in enumerate(CATEGORICAL_FIELDS):
            categorical = distributions[field]
            if not isinstance(categorical, CategoricalDistribution):
                raise ValueError(f"{field}: a categorical distribution is expected")
            with_column, without_column = [], 0.0
            for value, share in zip(categorical.categories, categorical.shares, strict=True):
                column = position.get(f"{field}={value}")
                if column is None:
                    without_column += float(share)
                else:
                    with_column.append(float(share))
                    self._selector[column, j] = len(with_column)
            self.expected[field] = np.array([*with_column, without_column])
            self._category_bins.append(len(with_column) + 1)
        self._ring = np.zeros((window_rows, len(feature_names)), dtype=np.float32)
        self._next = 0  # ring position the next row goes to
        self._filled = 0  # rows in the window
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        """Rows now in the window."""
        return self._filled

    def update(self, features: npt.NDArray[np.float32]) -> None:
        """Adds scored rows (float32, the model's feature order); the oldest rows leave."""
        n = len(features)
        if n == 0:
            return
        size = self.window_rows
        if n >= size:
            with self._lock:
                self._ring[:] = features[n - size :]
                self._next, self._filled = 0, size
            return
        with self._lock:
            start = self._next
            first = min(n, size - start)
            self._ring[start : start + first] = features[:first]
            if first < n:
                self._ring[: n - first] = features[first:]
            self._next = (start + n) % size
            self._filled = min(size, self._filled + n)

    def bin_counts(self) -> dict[str, npt.NDArray[np.int64]]:
        """Rows of the window per bin, for each field (bins as in `expected`)."""
        with self._lock:
            window = self._ring[: self._filled].copy()
        counts: dict[str, npt.NDArray[np.int64]] = {}
        for field, column, edges in self._numeric:
            bins = bin_numeric(edges, window[:, column])
            counts[field] = np.bincount(bins, minlength=len(edges) + 1)
        slots = (window @ self._selector).astype(np.intp)
        for j, field in enumerate(CATEGORICAL_FIELDS):
            n_bins = self._category_bins[j]
            # slot 0 (no column set) counts in the last bin
            bins = np.where(slots[:, j] == 0, n_bins - 1, np.minimum(slots[:, j], n_bins - 1) - 1)
            counts[field] = np.bincount(bins, minlength=n_bins)
        return {field: counts[field] for field in FIELDS}

    def psi(self) -> dict[str, float]:
        """PSI per form field (FIELDS order) over the current window; NaN while it is empty."""
        return {
            field: psi(self.expected[field], counts, self.epsilon)
            for field, counts in self.bin_counts().items()
        }
