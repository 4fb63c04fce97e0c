"""The 13 form fields of an Arrow record batch as the arrays validation and encoding take.

Numeric fields may be any integer, floating or decimal column, or text (CSV input is read as
text so nothing is inferred in an extra pass): text that is not a plain decimal number becomes
NaN, which validation refuses, quoting the text. Categorical fields are text (plain or
dictionary-encoded) turned into positions in `categories(field)` by Arrow's `index_in`.
"""

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from features.encoder import CategoryCodes
from features.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS, categories

# What Arrow's text-to-float cast reads, after trimming blanks: no "inf", "nan" or "1,5".
_DECIMAL_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


class InputSchemaError(ValueError):
    """A form field is missing from the input or its column has a type no value could pass."""


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
    Numeric fields must be number columns, or text where the format has no types (CSV)."""
    names = schema.names
    for field in (*NUMERIC_FIELDS, *CATEGORICAL_FIELDS):
        if field not in names:
            raise InputSchemaError(f"{field}: column missing from the input")
        if names.count(field) > 1:
            raise InputSchemaError(f"{field}: column given more than once")
        data_type = schema.field(field).type
        if field in NUMERIC_FIELDS and not (
            is_number(data_type) or (text_numbers and is_text(data_type))
        ):
            raise InputSchemaError(f"{field}: must be a numeric column; got type {data_type}")
        if field in CATEGORICAL_FIELDS and not is_text(data_type):
            raise InputSchemaError(f"{field}: must be a text column; got type {data_type}")


def numeric_values(column: pa.Array) -> npt.NDArray[np.float64]:
    """float64 values; NaN for a null cell and for text that is no number."""
    if is_text(column.type):
        column = _plain_text(column)
        trimmed = pc.utf8_trim_whitespace(column)
        readable = pc.match_substring_regex(trimmed, _DECIMAL_NUMBER)
        column = pc.if_else(readable, trimmed, pa.scalar(None, trimmed.type))
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def category_codes(field: str, column: pa.Array) -> CategoryCodes:
    """Positions in `categories(field)`; -1 for a null cell or any other text."""
    column = _plain_text(column)
    allowed = pa.array(categories(field), type=column.type)
    found = pc.fill_null(pc.index_in(column, value_set=allowed), -1)
    return CategoryCodes(found.to_numpy(zero_copy_only=False), categories(field))


def raw_cells(column: pa.Array, rows: npt.NDArray[np.intp]) -> list[Any]:
    """The cells at `rows` as Python values (None for null), for error messages."""
    return list(column.take(pa.array(rows, type=pa.int64())).to_pylist())


def shown_cells(
    column: pa.Array, rows: npt.NDArray[np.intp], parsed: npt.NDArray[np.float64] | None
) -> list[Any]:
    """The cells at `rows` as an error message shows them: a number read from text (CSV) as
    the number, anything else as the input had it."""
    cells = raw_cells(column, rows)
    if parsed is None or not is_text(column.type):
        return cells
    numbers = parsed[rows].tolist()
    return [
        cell if math.isnan(number) else number for cell, number in zip(cells, numbers, strict=True)
    ]


def _plain_text(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column
