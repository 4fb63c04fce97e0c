"""CSV bulk upload: pandas' C parser, then the shared vectorised column checks.

Row-by-row Pydantic validation would cost more than the model; categorical columns become
category codes (pandas' Categorical), so encoding does no per-cell string lookups.
"""

import io

import numpy as np
import pandas as pd

from features.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS, categories
from service.column_checks import (
    BulkColumns,
    Problem,
    category_codes,
    check_header,
    check_row_count,
    not_a_number,
    numeric_problem,
    raise_problems,
)
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
    check_header(frame.columns)
    check_row_count(len(frame), max_rows)
    problems: list[Problem | None] = []
    columns: BulkColumns = {}
    for name in NUMERIC_FIELDS:
        column = frame[name]
        if column.dtype.kind not in "if":
            row = int(np.argmax(pd.to_numeric(column, errors="coerce").isna().to_numpy()))
            problems.append(not_a_number(name, row, column.iloc[row]))
            continue
        values = column.to_numpy(dtype=np.float64)
        problems.append(numeric_problem(name, values))
        columns[name] = values
    for name in CATEGORICAL_FIELDS:
        codes = pd.Categorical(frame[name], categories=categories(name)).codes
        columns[name], problem = category_codes(name, codes, frame[name].iloc.__getitem__)
        problems.append(problem)
    raise_problems(problems)
    return columns
