"""The one reader of column-wise applicants: whatever the way in (an Arrow or CSV body, a JSON
body's arrays, Open Inference Protocol tensors, a Spark job's Arrow batches), the 13 form fields
become the arrays validation and encoding take (`ApplicantColumns`).

Numeric fields become float64, NaN where a cell holds no number (null, text that is no number,
a JSON string or boolean): validation refuses NaN, quoting the cell as it was sent. Integers of
any width are cast without a range check (an int64 above 2**53 rounds, then fails the bounds
like any other large number: a safe cast would raise and stop the whole input). Categorical
fields become positions in `categories(field)` (-1 for a null or any other value), by Arrow's
`index_in` in C++. Python touches single cells only to word the message of an invalid one,
except for JSON arrays that mix types, which are sorted out cell by cell.
"""

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from features.encoder import CategoryCodes
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS, categories

# What Arrow's text-to-float cast reads, after trimming blanks: no "inf", "nan" or "1,5".
_DECIMAL_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

ArrowColumn: TypeAlias = pa.Array | pa.ChunkedArray
# The cells of a field at the given rows, as the input had them (None for an empty cell).
Cells = Callable[[str, npt.NDArray[np.intp]], Sequence[object]]


class NumberText(str):
    """A text cell that reads as a number (CSV), trimmed: a message quotes it as written and
    without quotes (`got 9007199254740993`, not the float it rounds to)."""


class InputSchemaError(ValueError):
    """A form field is missing from the input or its column has a type no value could pass."""


@dataclass(frozen=True)
class ApplicantColumns:
    """Every form field of a batch, read: numeric ones as float64 (NaN: no number), categorical
    ones as codes; `cells` gives the values as sent, for error messages."""

    numeric: dict[str, npt.NDArray[np.float64]]
    codes: dict[str, CategoryCodes]
    cells: Cells
    n_rows: int

    def for_encoder(self) -> dict[str, npt.NDArray[np.float64] | CategoryCodes]:
        """The columns as FeatureEncoder.encode_columns takes them."""
        return {**self.numeric, **self.codes}

    def rows(
        self, keep: npt.NDArray[np.bool_]
    ) -> dict[str, npt.NDArray[np.float64] | CategoryCodes]:
        """`for_encoder()` of the rows where `keep` is True."""
        kept: dict[str, npt.NDArray[np.float64] | CategoryCodes] = {
            name: values[keep] for name, values in self.numeric.items()
        }
        for name, column in self.codes.items():
            kept[name] = CategoryCodes(column.codes[keep], column.categories)
        return kept


# -- Arrow columns (Arrow bodies, CSV read by Arrow, Spark batches) ----------------------------
def is_text(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def is_number(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    )


def check_input_schema(schema: pa.Schema, *, text_numbers: bool = False) -> None:
    """Every form field present once with a usable type; raises naming the first that is not.
    Numeric fields must be number columns, or text where the format has no types (CSV); an
    all-null column (Arrow's null type) passes, every cell of it missing."""
    names = schema.names
    for field in (*NUMERIC_FIELDS, *CATEGORICAL_FIELDS):
        if field not in names:
            raise InputSchemaError(f"{field}: column missing from the input")
        if names.count(field) > 1:
            raise InputSchemaError(f"{field}: column given more than once")
        data_type = schema.field(field).type
        if pa.types.is_null(data_type):
            continue
        if field in NUMERIC_FIELDS and not (
            is_number(data_type) or (text_numbers and is_text(data_type))
        ):
            kind = "a numeric column" + (" (or text)" if text_numbers else "")
            raise InputSchemaError(f"{field}: must be {kind}; got type {data_type}")
        if field in CATEGORICAL_FIELDS and not is_text(data_type):
            raise InputSchemaError(f"{field}: must be a text column; got type {data_type}")


def from_arrow(table: pa.Table | pa.RecordBatch, *, text_numbers: bool = False) -> ApplicantColumns:
    """The form fields of `table`, whose schema `check_input_schema` accepts."""
    check_input_schema(table.schema, text_numbers=text_numbers)
    numeric = {name: numeric_values(table.column(name)) for name in NUMERIC_FIELDS}
    codes = {name: category_codes(name, table.column(name)) for name in CATEGORICAL_FIELDS}

    def cells(name: str, rows: npt.NDArray[np.intp]) -> list[Any]:
        return shown_cells(table.column(name), rows, numeric.get(name))

    return ApplicantColumns(numeric, codes, cells, table.num_rows)


def numeric_values(column: ArrowColumn) -> npt.NDArray[np.float64]:
    """float64 values; NaN for a null cell and for text that is no number."""
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    if is_text(column.type):
        column = _plain_text(column)
        trimmed = pc.utf8_trim_whitespace(column)
        readable = pc.match_substring_regex(trimmed, _DECIMAL_NUMBER)
        column = pc.if_else(readable, trimmed, pa.scalar(None, trimmed.type))
    # Unsafe: an integer beyond float64's exact range rounds (the bounds then refuse it).
    values = pc.cast(column, pa.float64(), safe=False)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if values.null_count:
        values = pc.fill_null(values, math.nan)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)


def category_codes(field: str, column: ArrowColumn) -> CategoryCodes:
    """Positions in `categories(field)`; -1 for a null cell or any other value."""
    allowed = categories(field)
    if not is_text(column.type):  # a null column, or binary cells (V2 BYTES that are no text)
        return CategoryCodes(np.full(len(column), -1, dtype=np.int32), allowed)
    column = _plain_text(column)
    found = pc.fill_null(pc.index_in(column, value_set=pa.array(allowed, type=column.type)), -1)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks() if found.num_chunks != 1 else found.chunk(0)
    return CategoryCodes(found.to_numpy(zero_copy_only=False), allowed)


def raw_cells(column: ArrowColumn, rows: npt.NDArray[np.intp]) -> list[Any]:
    """The cells at `rows` as Python values (None for null), for error messages."""
    return list(column.take(pa.array(rows, type=pa.int64())).to_pylist())


def shown_cells(
    column: ArrowColumn, rows: npt.NDArray[np.intp], parsed: npt.NDArray[np.float64] | None
) -> list[Any]:
    """The cells at `rows` as an error message shows them: a number read from text (CSV) as
    written, blank text in a numeric field as missing, anything else as the input had it."""
    cells = raw_cells(column, rows)
    if parsed is None or not is_text(column.type):
        return cells
    numbers = parsed[rows].tolist()
    shown: list[Any] = []
    for cell, number in zip(cells, numbers, strict=True):
        if not math.isnan(number):
            shown.append(NumberText(cell.strip()))
        elif isinstance(cell, str) and not cell.strip():
            shown.append(None)
        else:
            shown.append(cell)
    return shown


def _plain_text(column: ArrowColumn) -> ArrowColumn:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


# -- Python values (JSON arrays, Open Inference Protocol tensors) -------------------------------
JsonColumn: TypeAlias = Sequence[Any] | npt.NDArray[Any]


def from_values(columns: Mapping[str, JsonColumn], *, may_hold_booleans: bool) -> ApplicantColumns:
    """The form fields from equally long arrays of Python values (as a JSON parser gives them)
    or NumPy arrays (binary tensors). Numbers must be numbers: a string ("30") or a boolean is
    no number, whatever it spells. `may_hold_booleans`: False only when the caller knows no
    cell is a boolean (a JSON text without `true`/`false`), which spares a scan of each array."""
    n_rows = len(columns[FIELDS[0]])
    numeric = {name: _json_numbers(columns[name], may_hold_booleans) for name in NUMERIC_FIELDS}
    codes = {name: _json_codes(name, columns[name]) for name in CATEGORICAL_FIELDS}

    def cells(name: str, rows: npt.NDArray[np.intp]) -> list[Any]:
        values = columns[name]
        taken = [values[i] for i in rows.tolist()]
        return [v.item() if isinstance(v, np.generic) else v for v in taken]

    return ApplicantColumns(numeric, codes, cells, n_rows)


def _json_numbers(values: JsonColumn, may_hold_booleans: bool) -> npt.NDArray[np.float64]:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(np.float64, copy=False)
    try:
        array = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = None  # mixed types, or integers past 64 bits: sorted out cell by cell
    numbers = array is not None and (is_number(array.type) and not pa.types.is_decimal(array.type))
    if numbers and not (may_hold_booleans and any(type(v) is bool for v in values)):
        return numeric_values(array)
    if array is not None and pa.types.is_null(array.type):
        return np.full(len(values), np.nan)
    return np.fromiter((_as_number(v) for v in values), dtype=np.float64, count=len(values))


def _as_number(value: object) -> float:
    if type(value) is int or type(value) is float:
        return float(value)
    if isinstance(value, np.integer | np.floating) and not isinstance(value, np.bool_):
        return float(value)
    return math.nan


def _json_codes(field: str, values: JsonColumn) -> CategoryCodes:
    try:
        array = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = None
    if array is None or not (is_text(array.type) or pa.types.is_null(array.type)):
        # Not all text: anything else is no category (a null stays missing).
        array = pa.array([v if isinstance(v, str) else None for v in values], type=pa.string())
    return category_codes(field, array)


# -- how a cell is quoted in a message --------------------------------------------------------
def shown(value: object) -> str:
    """A cell as an error message quotes it, as the client sent it: text in quotes, a whole
    number without a trailing .0, a boolean as JSON writes it; never a NumPy or Decimal repr."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, NumberText):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, list | dict):  # a JSON array or object where a value should be
        return json.dumps(value)
    return repr(str(value))
