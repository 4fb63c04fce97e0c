"""Row-by-row verdicts on column-wise applicants, computed one column at a time.

The rules are the form's (features.schema): a number must be finite and within its field's
NUMERIC_BOUNDS, both ends allowed; a category must be one of the field's names; an empty cell
(null) is refused. Columnar readers hand the values over already typed: numeric fields as
float64 arrays (NaN where a cell is null or is no number), categorical fields as positions in
`categories(field)` (-1 for anything else, null included). Each check is an array operation;
only the invalid rows get a message, naming the first failing field in form order, e.g.
`age: must be a number from 18 to 120; got 12`.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_BOUNDS, NUMERIC_FIELDS, categories

# The raw cells of `field` at the given rows, as the input had them (None for an empty cell):
# the text that could not be read as a number, the unknown category's name...
RawValues = Callable[[str, npt.NDArray[np.intp]], Sequence[object]]


@dataclass(frozen=True)
class InvalidRows:
    """The rows of a batch that break a rule, ascending, each with one message."""

    mask: npt.NDArray[np.bool_]  # True for an invalid row; one entry per row of the batch
    rows: npt.NDArray[np.intp]  # positions of the invalid rows, ascending
    errors: list[str]  # errors[i] is about row rows[i]

    def __len__(self) -> int:
        return len(self.rows)


def numeric_rule(field: str) -> str:
    low, high, _ = NUMERIC_BOUNDS[field]
    return f"must be a number from {low:g} to {high:g}"


def category_rule(field: str) -> str:
    return f"must be one of {', '.join(categories(field))}"


def numeric_violations(field: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True where a value is outside the field's bounds; NaN and infinities are outside too."""
    low, high, _ = NUMERIC_BOUNDS[field]
    return ~((values >= low) & (values <= high))


def category_violations(codes: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.bool_]:
    """True where a cell is none of the field's categories (an empty cell included)."""
    return np.asarray(codes < 0)


def find_invalid_rows(
    numeric: Mapping[str, npt.NDArray[np.float64]],
    codes: Mapping[str, npt.NDArray[np.integer[Any]]],
    raw_values: RawValues,
) -> InvalidRows:
    """Every row that breaks a rule, and why: the first failing field of the row in form order
    (FIELDS) and its rule. `numeric` holds every numeric field, `codes` every categorical one,
    all equally long; `raw_values` is called once per failing field with its failing rows."""
    n_rows = len(numeric[NUMERIC_FIELDS[0]])
    # Position in FIELDS of each row's first failing field; len(FIELDS) while none failed.
    first = np.full(n_rows, len(FIELDS), dtype=np.intp)
    for position in reversed(range(len(FIELDS))):  # last to first: the earliest field wins
        field = FIELDS[position]
        if field in NUMERIC_BOUNDS:
            bad = numeric_violations(field, numeric[field])
        else:
            bad = category_violations(codes[field])
        first[bad] = position
    mask = first < len(FIELDS)
    rows = np.flatnonzero(mask)
    errors = np.empty(len(rows), dtype=object)
    for position in np.unique(first[rows]).tolist():
        field = FIELDS[position]
        at = np.flatnonzero(first[rows] == position)
        rule = numeric_rule(field) if field in NUMERIC_BOUNDS else category_rule(field)
        errors[at] = [_message(field, rule, value) for value in raw_values(field, rows[at])]
    return InvalidRows(mask=mask, rows=rows, errors=errors.tolist())


def _message(field: str, rule: str, value: object) -> str:
    if value is None:
        return f"{field}: missing value"
    return f"{field}: {rule}; got {_shown(value)}"


def _shown(value: object) -> str:
    """A cell as the message shows it: text quoted, whole numbers without a trailing .0."""
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    if isinstance(value, np.integer):
        return str(int(value))
    return repr(value)


assert set(FIELDS) == set(NUMERIC_FIELDS) | set(CATEGORICAL_FIELDS)
