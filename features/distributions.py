"""Each form field's training distribution, as stored in the model metadata ("field_distributions").

The export computes it from the rows the model was trained on; the drift monitor compares recent
requests against it and the reason codes read each numeric field's median from it.

Stored form (JSON-able, one entry per field of features.schema.FIELDS):
    numeric:     {"type": "numeric", "edges": [e1, ..., ek], "shares": [s0, ..., sk],
                  "median": m}
    categorical: {"type": "categorical", "categories": [c0, ...], "shares": [s0, ...]}
A numeric field has k+1 bins with open ends: bin 0 is (-inf, e1], bin i is (e_i, e_(i+1)],
bin k is (e_k, +inf). Edges are the training deciles, deduplicated (a field with a large point
mass, such as debt = 0 for ~80% of applicants, gets fewer bins). Bins are closed on the right so
that a point mass sits in the bin whose upper edge it equals, not split across two. Values are
binned as float32, as the model sees them. A categorical field lists every category of
features.schema.categories, zero-share ones included. Shares sum to 1.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # only the export passes DataFrames: a serving process never imports pandas
    import pandas as pd

from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS, categories

METADATA_KEY = "field_distributions"
DECILES = tuple(i / 10 for i in range(1, 10))


@dataclass(frozen=True)
class NumericDistribution:
    edges: npt.NDArray[np.float64]  # inner bin edges, increasing
    shares: npt.NDArray[np.float64]  # len(edges) + 1 training shares
    median: float

    def as_metadata(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "edges": [float(e) for e in self.edges],
            "shares": [float(s) for s in self.shares],
            "median": float(self.median),
        }


@dataclass(frozen=True)
class CategoricalDistribution:
    categories: tuple[str, ...]
    shares: npt.NDArray[np.float64]  # one training share per category

    def as_metadata(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "categories": list(self.categories),
            "shares": [float(s) for s in self.shares],
        }


FieldDistribution = NumericDistribution | CategoricalDistribution


def bin_numeric(edges: npt.NDArray[np.float64], values: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Right-closed bins with open ends: index i such that edges[i-1] < value <= edges[i]."""
    return np.searchsorted(edges, values, side="left")


def numeric_distribution(values: npt.NDArray[Any]) -> NumericDistribution:
    as_model_sees = np.asarray(values, dtype=np.float32)
    edges = np.unique(np.quantile(as_model_sees.astype(np.float64), DECILES))
    counts = np.bincount(bin_numeric(edges, as_model_sees), minlength=len(edges) + 1)
    return NumericDistribution(
        edges=edges,
        shares=counts / len(as_model_sees),
        median=float(np.median(as_model_sees.astype(np.float64))),
    )


def categorical_distribution(field: str, values: "pd.Series[Any]") -> CategoricalDistribution:
    names = categories(field)
    unknown = sorted(set(values.astype(str)) - set(names))
    if unknown:
        raise ValueError(f"{field}: training values {unknown} are not categories {names}")
    counts = values.value_counts().reindex(list(names), fill_value=0).to_numpy(dtype=np.float64)
    return CategoricalDistribution(categories=names, shares=counts / len(values))


def compute_distributions(training: "pd.DataFrame") -> dict[str, FieldDistribution]:
    """One distribution per form field, from the training rows (the form's raw fields)."""
    if len(training) == 0:
        raise ValueError("no training rows to compute field distributions from")
    out: dict[str, FieldDistribution] = {}
    for field in FIELDS:
        if field in CATEGORICAL_FIELDS:
            out[field] = categorical_distribution(field, training[field])
        else:
            out[field] = numeric_distribution(training[field].to_numpy(dtype=np.float64))
    return out


def to_metadata(distributions: Mapping[str, FieldDistribution]) -> dict[str, dict[str, Any]]:
    return {field: distribution.as_metadata() for field, distribution in distributions.items()}


def from_metadata(stored: Mapping[str, Any]) -> dict[str, FieldDistribution]:
    """Parses the stored form back; raises ValueError naming the field if it is inconsistent."""
    missing = [field for field in FIELDS if field not in stored]
    if missing:
        raise ValueError(f"{METADATA_KEY} lacks fields {missing}")
    out: dict[str, FieldDistribution] = {}
    for field in FIELDS:
        entry = stored[field]
        shares = np.asarray(entry["shares"], dtype=np.float64)
        if field in NUMERIC_FIELDS:
            edges = np.asarray(entry["edges"], dtype=np.float64)
            if len(shares) != len(edges) + 1 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{METADATA_KEY}[{field}]: edges must increase, one share more")
            out[field] = NumericDistribution(edges, shares, float(entry["median"]))
        else:
            names = tuple(str(c) for c in entry["categories"])
            if len(shares) != len(names):
                raise ValueError(f"{METADATA_KEY}[{field}]: one share per category expected")
            out[field] = CategoricalDistribution(names, shares)
        if not np.isclose(shares.sum(), 1.0, atol=1e-6):
            raise ValueError(f"{METADATA_KEY}[{field}]: shares sum to {shares.sum()}, not 1")
    return out


def medians(distributions: Mapping[str, FieldDistribution]) -> dict[str, float]:
    return {
        field: d.median for field, d in distributions.items() if isinstance(d, NumericDistribution)
    }
