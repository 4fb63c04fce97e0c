"""CSV bulk upload: pandas' C parser, then the shared vectorised column checks.

Row-by-row Pydantic validation would cost more than the model; categorical columns become
category codes (pandas' Categorical), so encoding does no per-cell string lookups.
"""

import io
from collections.abc import Callable

import numpy as np
import pandas as pd

from features.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS, categories
from service.column_checks import BulkColumns, Problem, checked_columns, not_a_number
from service.errors import RequestError


def parse_applicant_csv(body: bytes, max_rows: int) -> BulkColumns:
    """Columns by field name (numeric as float64, categorical as codes), validated."""
    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            dtype={name: str for name in CATEGORICAL_FIELDS},
            keep_default_na=False,
            na_values={name: [""] for name in NUMERIC_FIELDS},
            nrows=max_rows + 1,
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise RequestError(400, f"body: not a readable CSV ({error})") from error

    def numeric(name: str) -> np.ndarray | Problem:
        column = frame[name]
        if column.dtype.kind not in "if":
            row = int(np.argmax(pd.to_numeric(column, errors="coerce").isna().to_numpy()))
            return not_a_number(name, row, column.iloc[row])
        return column.to_numpy(dtype=np.float64)

    def codes(name: str) -> tuple[np.ndarray, Callable[[int], object]]:
        found = pd.Categorical(frame[name], categories=categories(name)).codes
        return found, frame[name].iloc.__getitem__

    return checked_columns(frame.columns, len(frame), max_rows, numeric, codes)
