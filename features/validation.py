"""The form's rules, checked one column at a time, with two ways of reporting what breaks them.

The rules are the form's (features.schema): a number must be finite and within its field's
NUMERIC_BOUNDS, both ends allowed; a category must be one of the field's names; an empty cell
(null) is refused. The columns come from the one reader (features.columns). Each check is an
array operation; only invalid cells get a message:

- `find_invalid_rows`, a verdict per row (the Spark job's rejects, per-row bulk answers): each
  invalid row's first failing field in form order and its rule,
  `age: must be a number from 18 to 120; got 12`;
- `first_problems`, for refusing a whole request: each failing field's first invalid row,
  `Problem("age", 3, "must be a number from 18 to 120; got 12")`.

Both word a cell alike, so a refusal and a per-row verdict on the same cell say the same thing.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.columns import ApplicantColumns, shown
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_BOUNDS, NUMERIC_FIELDS, categories


@dataclass(frozen=True)
class InvalidRows:
    """The rows of a batch that break a rule, ascending, each with one message."""

    mask: npt.NDArray[np.bool_]  # True for an invalid row; one entry per row of the batch
    rows: npt.NDArray[np.intp]  # positions of the invalid rows, ascending
    errors: list[str]  # errors[i] is about row rows[i]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Problem:
    """The first invalid cell of a field: its row and what is wrong with it."""

    field: str
    row: int
    message: str  # the rule and the cell, without the field: `missing value`, `must be ...`

    @property
    def location(self) -> str:
        return f"{self.field}[{self.row}]"


def numeric_rule(field: str) -> str:
    low, high, _ = NUMERIC_BOUNDS[field]
    return f"must be a number from {low:g} to {high:g}"


def category_rule(field: str) -> str:
    return f"must be one of {', '.join(categories(field))}"


def rule(field: str) -> str:
    return numeric_rule(field) if field in NUMERIC_BOUNDS else category_rule(field)


def numeric_violations(field: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True where a value is outside the field's bounds; NaN and infinities are outside too."""
    low, high, _ = NUMERIC_BOUNDS[field]
    return ~((values >= low) & (values <= high))


def violations(columns: ApplicantColumns, field: str) -> npt.NDArray[np.bool_]:
    """True for each row whose `field` breaks its rule."""
    if field in NUMERIC_BOUNDS:
        return numeric_violations(field, columns.numeric[field])
    return np.asarray(columns.codes[field].codes < 0)


def cell_message(field: str, value: object) -> str:
    """What is wrong with `value` in `field` (known to break the rule), without the field."""
    if value is None:
        return "missing value"
    return f"{rule(field)}; got {shown(value)}"


def find_invalid_rows(columns: ApplicantColumns) -> InvalidRows:
    """Every row that breaks a rule, and why: the first failing field of the row in form order
    (FIELDS) and its rule."""
    # Position in FIELDS of each row's first failing field; len(FIELDS) while none failed.
    first = np.full(columns.n_rows, len(FIELDS), dtype=np.intp)
    for position in reversed(range(len(FIELDS))):  # last to first: the earliest field wins
        bad = violations(columns, FIELDS[position])
        if bad.any():
            first[bad] = position
    mask = first < len(FIELDS)
    rows = np.flatnonzero(mask)
    errors = np.empty(len(rows), dtype=object)
    for position in np.unique(first[rows]).tolist():
        field = FIELDS[position]
        at = np.flatnonzero(first[rows] == position)
        cells = columns.cells(field, rows[at])
        errors[at] = [f"{field}: {cell_message(field, value)}" for value in cells]
    return InvalidRows(mask=mask, rows=rows, errors=errors.tolist())


def first_problems(columns: ApplicantColumns) -> list[Problem]:
    """The first invalid row of each field that has one, in form order; empty when all pass."""
    problems = []
    for field in FIELDS:
        bad = violations(columns, field)
        if bad.any():
            row = int(np.argmax(bad))
            (value,) = columns.cells(field, np.array([row], dtype=np.intp))
            problems.append(Problem(field, row, cell_message(field, value)))
    return problems


assert set(FIELDS) == set(NUMERIC_FIELDS) | set(CATEGORICAL_FIELDS)
