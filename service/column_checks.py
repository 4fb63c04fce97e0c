"""Vectorised checks for column-wise bulk uploads (CSV, Arrow), with the same bounds as
`Applicant`: each column is checked as one array, and the first bad row of each bad column is
named (`field[row]`), as the JSON bulk route names it."""

from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from features.encoder import CategoryCodes
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_BOUNDS, NUMERIC_FIELDS, categories
from service.errors import MAX_DETAILS, RequestError, too_large

Problem = dict[str, str]
# Checked columns by field name: numeric ones as float64 arrays, categorical ones as codes.
BulkColumns = dict[str, npt.NDArray[np.float64] | CategoryCodes]
# Per body format: a numeric field's values as float64 (NaN where missing), or why it has none.
NumericReader = Callable[[str], npt.NDArray[np.float64] | Problem]
# Per body format: a categorical field's codes (-1 outside its categories) and a reader of the
# raw value in a row (for the error message), or why it has none.
CodesReader = Callable[[str], tuple[npt.NDArray[np.integer], Callable[[int], object]] | Problem]


def checked_columns(
    header: Iterable[str],
    n_rows: int,
    max_rows: int,
    numeric: NumericReader,
    codes: CodesReader,
) -> BulkColumns:
    """Every field's column, checked: 422 listing every bad column (its first bad row named),
    413 over the row limit."""
    _check_header(header)
    _check_row_count(n_rows, max_rows)
    problems: list[Problem | None] = []
    columns: BulkColumns = {}
    for name in NUMERIC_FIELDS:
        values = numeric(name)
        if isinstance(values, dict):
            problems.append(values)
            continue
        problems.append(_numeric_problem(name, values))
        columns[name] = values
    for name in CATEGORICAL_FIELDS:
        read = codes(name)
        if isinstance(read, dict):
            problems.append(read)
            continue
        columns[name], problem = _category_codes(name, *read)
        problems.append(problem)
    _raise_problems(problems)
    return columns


def _check_header(header: Iterable[str]) -> None:
    """Every field exactly once, nothing else."""
    names = list(header)
    details = [
        {"location": name, "message": "Field required"} for name in FIELDS if name not in names
    ]
    details += [
        {"location": name, "message": "Unknown field"} for name in names if name not in FIELDS
    ]
    details += [
        {"location": name, "message": "Field given more than once"}
        for name in dict.fromkeys(names)
        if name in FIELDS and names.count(name) > 1
    ]
    if details:
        raise RequestError(
            422, f"header: {details[0]['location']}: {details[0]['message']}", details
        )


def _check_row_count(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise RequestError(422, "body: no rows")
    if n_rows > max_rows:
        raise too_large("bulk input", n_rows, max_rows, "rows")


def not_a_number(name: str, row: int, got: object) -> Problem:
    return {"location": f"{name}[{row}]", "message": f"Input should be a number; got {got!r}"}


def _numeric_problem(name: str, values: npt.NDArray[np.float64]) -> Problem | None:
    """The first value outside the field's bounds; NaN (a missing cell) is outside too."""
    low, high, _ = NUMERIC_BOUNDS[name]
    bad = ~((values >= low) & (values <= high))
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    return {
        "location": f"{name}[{row}]",
        "message": f"Input should be a finite number from {low:g} to {high:g}; got {values[row]!r}",
    }


def _category_codes(
    name: str, codes: npt.NDArray[np.integer], value_at: Callable[[int], object]
) -> tuple[CategoryCodes, Problem | None]:
    """Codes into the field's categories (-1 marks a value outside them: the first is named)."""
    allowed = categories(name)
    column = CategoryCodes(codes, allowed)
    bad = codes < 0
    if not bad.any():
        return column, None
    row = int(np.argmax(bad))
    return column, {
        "location": f"{name}[{row}]",
        "message": f"Input should be one of {', '.join(allowed)}; got {value_at(row)!r}",
    }


def _raise_problems(problems: list[Problem | None]) -> None:
    details = [p for p in problems if p is not None]
    if details:
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise RequestError(
            422, f"{details[0]['location']}: {details[0]['message']}{more}", details[:MAX_DETAILS]
        )
