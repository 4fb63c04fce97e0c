"""features.validation: per-row verdicts on columns, first failing field in form order."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from export.dataset import load_applicants
from features.columns import ApplicantColumns, from_values
from features.schema import FIELDS, NUMERIC_BOUNDS
from features.validation import find_invalid_rows, first_problems, numeric_violations


def _columns(rows: list[dict[str, object]]) -> ApplicantColumns:
    """Row dicts as column-wise Python values, read as a JSON body's arrays are."""
    return from_values({name: [r[name] for r in rows] for name in FIELDS}, may_hold_booleans=True)


@pytest.fixture(scope="module")
def good_rows() -> list[dict[str, object]]:
    return load_applicants()[list(FIELDS)].head(50).to_dict(orient="records")


def test_every_row_of_the_dataset_is_valid() -> None:
    rows = load_applicants()[list(FIELDS)].to_dict(orient="records")
    invalid = find_invalid_rows(_columns(rows))
    assert len(invalid) == 0 and not invalid.mask.any() and len(invalid.mask) == len(rows)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"age": 12}, "age: must be a number from 18 to 120; got 12"),
        ({"age": 120}, None),  # both ends allowed
        ({"age": 18.0}, None),
        ({"age": 120.5}, "age: must be a number from 18 to 120; got 120.5"),
        ({"amount": -1}, "amount: must be a number from 0 to 1e+09; got -1"),
        ({"price": float("inf")}, "price: must be a number from 0 to 1e+09; got inf"),
        ({"seniority": float("nan")}, "seniority: must be a number from 0 to 80; got nan"),
        ({"income": None}, "income: missing value"),
        ({"time": "12 months"}, "time: must be a number from 0 to 600; got '12 months'"),
        (
            {"home": "castle"},
            "home: must be one of unk, rent, owner, private, ignore, parents, other; got 'castle'",
        ),
        (
            {"home": "Owner"},
            "home: must be one of unk, rent, owner, private, ignore, parents, other; got 'Owner'",
        ),
        ({"marital": None}, "marital: missing value"),
        # Several bad fields: the first in form order (seniority, home, time, age, ...) is named.
        ({"price": -1, "job": "pilot", "age": 5}, "age: must be a number from 18 to 120; got 5"),
        (
            {"price": -1, "job": "pilot"},
            "job: must be one of unk, fixed, partime, freelance, others; got 'pilot'",
        ),
    ],
)
def test_one_bad_row_among_good_ones(good_rows, changes, expected) -> None:
    rows = [dict(r) for r in good_rows]
    rows[17].update(changes)
    invalid = find_invalid_rows(_columns(rows))
    if expected is None:
        assert len(invalid) == 0
        return
    assert invalid.rows.tolist() == [17]
    assert invalid.mask.sum() == 1 and invalid.mask[17]
    assert invalid.errors == [expected]


def test_many_bad_rows_each_get_their_own_message(good_rows) -> None:
    rows = [dict(r) for r in good_rows]
    bad: dict[int, dict[str, object]] = {
        3: {"age": 200},
        9: {"records": "maybe"},
        10: {"debt": None},
        41: {"age": 17.5},
    }
    for i, change in bad.items():
        rows[i].update(change)
    invalid = find_invalid_rows(_columns(rows))
    assert invalid.rows.tolist() == [3, 9, 10, 41]
    assert invalid.errors == [
        "age: must be a number from 18 to 120; got 200",
        "records: must be one of unk, no, yes; got 'maybe'",
        "debt: missing value",
        "age: must be a number from 18 to 120; got 17.5",
    ]


def test_cells_are_read_only_for_failing_rows(good_rows) -> None:
    rows = [dict(r) for r in good_rows]
    rows[2]["home"] = "castle"
    columns = _columns(rows)
    asked: list[tuple[str, list[int]]] = []

    def spy(name: str, at: npt.NDArray[np.intp]) -> Sequence[object]:
        asked.append((name, at.tolist()))
        return columns.cells(name, at)

    spied = ApplicantColumns(columns.numeric, columns.codes, spy, columns.n_rows)
    find_invalid_rows(spied)
    first_problems(spied)
    assert asked == [("home", [2]), ("home", [2])]


def test_a_refusal_names_each_bad_fields_first_row_in_the_per_row_words(good_rows) -> None:
    """The two reports word a cell alike: a refusal's message is the per-row error without
    the field name, its location the field and the first bad row."""
    rows = [dict(r) for r in good_rows]
    bad: dict[int, dict[str, object]] = {
        5: {"job": "pilot"},
        7: {"age": "30"},
        8: {"age": True},
        30: {"income": None},
    }
    for i, change in bad.items():
        rows[i].update(change)
    columns = _columns(rows)
    problems = first_problems(columns)
    assert [(p.location, p.message) for p in problems] == [
        ("age[7]", "must be a number from 18 to 120; got '30'"),
        ("job[5]", "must be one of unk, fixed, partime, freelance, others; got 'pilot'"),
        ("income[30]", "missing value"),
    ]
    invalid = find_invalid_rows(columns)
    errors = dict(zip(invalid.rows.tolist(), invalid.errors, strict=True))
    assert errors[7] == "age: " + problems[0].message
    assert errors[8] == "age: must be a number from 18 to 120; got true"
    assert first_problems(_columns(good_rows)) == []


def test_numeric_bounds_are_inclusive_and_refuse_non_finite() -> None:
    for name, (low, high, _) in NUMERIC_BOUNDS.items():
        values = np.array([low, high, low - 1, high + 1, np.nan, np.inf, -np.inf])
        assert numeric_violations(name, values).tolist() == [False, False] + [True] * 5
