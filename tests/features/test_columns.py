"""features.columns: the one reader every way in shares (Arrow, CSV text, JSON arrays, tensors),
and the words an invalid cell is quoted in."""

from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from features.columns import InputSchemaError, from_arrow, from_values, shown
from features.schema import FIELDS
from features.validation import find_invalid_rows

GOOD: dict[str, Any] = {
    "seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
    "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
    "amount": 800, "price": 1000,
}  # fmt: skip


def _table(rows: int, **columns: pa.Array) -> pa.Table:
    table = pa.table({name: [value] * rows for name, value in GOOD.items()})
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _errors(columns: Any) -> dict[int, str]:
    invalid = find_invalid_rows(columns)
    return dict(zip(invalid.rows.tolist(), invalid.errors, strict=True))


def test_integers_beyond_float64s_exact_range_are_invalid_rows_not_a_failure() -> None:
    """A safe cast of an int64 above 2**53 to float64 raises, which stopped a whole Spark
    task; read unsafely, the value fails the bounds like any large number."""
    price = pa.array([1000, 2**53 + 1, 2**63 - 1, None], pa.int64())
    amount = pa.array([800, 800, 800, 2**64 - 1], pa.uint64())
    errors = _errors(from_arrow(_table(4, price=price, amount=amount)))
    assert errors == {
        1: f"price: must be a number from 0 to 1e+09; got {2**53 + 1}",
        2: f"price: must be a number from 0 to 1e+09; got {2**63 - 1}",
        3: f"amount: must be a number from 0 to 1e+09; got {2**64 - 1}",
    }


def test_decimal_and_narrow_types_read_as_their_numbers() -> None:
    age = pa.array([Decimal("26.5"), Decimal("12.5")], pa.decimal128(5, 1))
    time = pa.array([36, 36], pa.int8())
    columns = from_arrow(_table(2, age=age, time=time))
    assert columns.numeric["age"].tolist() == [26.5, 12.5]
    assert _errors(columns) == {1: "age: must be a number from 18 to 120; got 12.5"}


def test_text_numbers_as_a_csv_holds_them() -> None:
    """CSV is read as text: a decimal number (blanks trimmed) reads as the number and is quoted
    as written; blank text is a missing value; anything else is quoted as written."""
    age = pa.array([" 42 ", "", "forty", "1e1", "inf", None])
    columns = from_arrow(_table(6, age=age), text_numbers=True)
    assert columns.numeric["age"][0] == 42
    assert _errors(columns) == {
        1: "age: missing value",
        2: "age: must be a number from 18 to 120; got 'forty'",
        3: "age: must be a number from 18 to 120; got 1e1",
        4: "age: must be a number from 18 to 120; got 'inf'",
        5: "age: missing value",
    }


def test_text_in_a_numeric_column_is_a_schema_error_where_the_format_has_types() -> None:
    with pytest.raises(InputSchemaError, match="age: must be a numeric column; got type string"):
        from_arrow(_table(1, age=pa.array(["42"])))
    with pytest.raises(InputSchemaError, match="home: must be a text column; got type int64"):
        from_arrow(_table(1, home=pa.array([1])))


def test_categories_plain_dictionary_or_null() -> None:
    home = pa.array(["owner", "castle", None, "Owner"]).dictionary_encode()
    errors = _errors(from_arrow(_table(4, home=home)))
    rule = "home: must be one of unk, rent, owner, private, ignore, parents, other"
    assert errors == {
        1: f"{rule}; got 'castle'",
        2: "home: missing value",
        3: f"{rule}; got 'Owner'",
    }


def test_json_values_must_be_numbers_whatever_they_spell() -> None:
    """A JSON string ("30") or boolean in a numeric field is no number, also hidden among
    numbers (Arrow would read [1.5, true] as two floats)."""
    columns = {name: [value] * 5 for name, value in GOOD.items()}
    columns["age"] = [26, "30", True, 26.5, None]
    columns["income"] = [0.0, 1.5, 2.0, False, 3]
    columns["home"] = [5, "owner", "owner", "owner", "owner"]
    errors = _errors(from_values(columns, may_hold_booleans=True))
    assert errors == {
        0: "home: must be one of unk, rent, owner, private, ignore, parents, other; got 5",
        1: "age: must be a number from 18 to 120; got '30'",
        2: "age: must be a number from 18 to 120; got true",
        3: "income: must be a number from 0 to 1e+09; got false",
        4: "age: missing value",
    }
    columns["age"] = [26] * 4 + [2**70]
    columns["income"], columns["home"] = [0.0] * 5, ["owner"] * 5
    assert _errors(from_values(columns, may_hold_booleans=False)) == {
        4: f"age: must be a number from 18 to 120; got {2**70}",
    }


def test_tensors_as_numpy_arrays() -> None:
    columns: dict[str, Any] = {name: [value] * 3 for name, value in GOOD.items()}
    for name in ("age", "income", "price"):
        columns[name] = np.array(columns[name], dtype=np.float32)
    columns["age"][2] = 5
    errors = _errors(from_values(columns, may_hold_booleans=False))
    assert errors == {2: "age: must be a number from 18 to 120; got 5"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (np.float64(5.0), "5"),
        (np.float32(0.5), "0.5"),
        (5, "5"),
        (12.25, "12.25"),
        (np.int64(-3), "-3"),
        (Decimal("1.50"), "1.50"),
        (True, "true"),
        ("castle", "'castle'"),
        (np.str_("castle"), "'castle'"),
        (float("inf"), "inf"),
        (1e20, "1e+20"),
        ([1, "a"], '[1, "a"]'),
    ],
)
def test_a_cell_is_quoted_as_sent_never_as_a_repr(value: object, text: str) -> None:
    assert shown(value) == text


def test_every_field_is_read() -> None:
    columns = from_arrow(_table(2))
    assert set(columns.for_encoder()) == set(FIELDS) and columns.n_rows == 2
    assert _errors(columns) == {}
