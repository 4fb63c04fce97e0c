"""Vectorised applicant encoding: raw fields straight to the float32 matrix the model expects.

DictVectorizer walks one dict per row in Python and costs ~22 µs for a single applicant; this
encoder precomputes, from the stored feature order, which column each numeric field and each
category value lands in, so encoding is a few array writes. An unseen category value sets no
column of its one-hot group (all zeros), exactly as DictVectorizer does.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from features.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS

FeatureMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CategoryCodes:
    """A categorical column as positions in `categories`, -1 for a value outside them: how
    columnar readers (Arrow's index_in, pandas' Categorical) hand over strings, so encoding
    never touches one Python string per cell."""

    codes: npt.NDArray[np.integer[Any]]
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.codes)


CategoricalColumn = Sequence[Any] | npt.NDArray[Any] | CategoryCodes


@dataclass(frozen=True)
class FeatureEncoder:
    """Encodes applicants (one or many, row-wise or column-wise) in a fixed feature order."""

    feature_names: tuple[str, ...]
    numeric_columns: dict[str, int] = field(init=False)
    category_columns: dict[str, dict[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        position = {name: i for i, name in enumerate(self.feature_names)}
        numeric = {name: position[name] for name in NUMERIC_FIELDS if name in position}
        missing = [name for name in NUMERIC_FIELDS if name not in position]
        if missing:
            raise ValueError(f"feature order lacks numeric fields {missing}")
        categories: dict[str, dict[str, int]] = {name: {} for name in CATEGORICAL_FIELDS}
        for name, column in position.items():
            if "=" in name:
                group, value = name.split("=", 1)
                if group not in categories:
                    raise ValueError(f"feature {name!r} belongs to no categorical field")
                categories[group][value] = column
            elif name not in numeric:
                raise ValueError(f"unknown feature {name!r}")
        object.__setattr__(self, "numeric_columns", numeric)
        object.__setattr__(self, "category_columns", categories)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def encode_one(self, row: Mapping[str, Any]) -> FeatureMatrix:
        """One applicant as a (1, n_features) matrix; the hot path for single requests: the
        values go into a Python list (item writes into a NumPy array cost ~10x more), then one
        conversion."""
        values = [0.0] * len(self.feature_names)
        for name, column in self.numeric_columns.items():
            values[column] = row[name]
        for name, lookup in self.category_columns.items():
            column = lookup.get(row[name], -1)
            if column >= 0:
                values[column] = 1.0
        return np.array((values,), dtype=np.float32)

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> FeatureMatrix:
        """Many applicants given row-wise (dicts or mappings with the raw field names)."""
        if len(rows) == 1:
            return self.encode_one(rows[0])
        columns = {
            name: [row[name] for row in rows] for name in (*NUMERIC_FIELDS, *CATEGORICAL_FIELDS)
        }
        return self.encode_columns(columns)

    def encode_columns(self, columns: Mapping[str, Any]) -> FeatureMatrix:
        """Many applicants given column-wise: one equally long sequence or array per field
        (categorical ones may come as `CategoryCodes`)."""
        n_rows = len(columns[NUMERIC_FIELDS[0]])
        out = np.zeros((n_rows, self.n_features), dtype=np.float32)
        for name, column in self.numeric_columns.items():
            out[:, column] = columns[name]
        row_index = np.arange(n_rows)
        for name, lookup in self.category_columns.items():
            target = self._category_targets(columns[name], lookup)
            hit = target >= 0
            out[row_index[hit], target[hit]] = 1.0
        return out

    @staticmethod
    def _category_targets(
        values: CategoricalColumn, lookup: dict[str, int]
    ) -> npt.NDArray[np.intp]:
        """The column each value sets, or -1 for a value the model never saw."""
        if isinstance(values, CategoryCodes):
            # One slot per category plus a last one that code -1 indexes: both "unseen" (-1).
            table = np.array([lookup.get(c, -1) for c in values.categories] + [-1], dtype=np.intp)
            return table[values.codes]
        if isinstance(values, np.ndarray) and values.dtype.kind == "U":
            target = np.full(len(values), -1, dtype=np.intp)
            for value, column in lookup.items():
                target[values == value] = column
            return target
        get = lookup.get
        return np.fromiter((get(value, -1) for value in values), dtype=np.intp, count=len(values))
