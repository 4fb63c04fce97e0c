"""CSV bulk upload: pandas' C parser plus vectorised checks with the same bounds as `Applicant`.

Row-by-row Pydantic validation would cost more than the model; here each column is checked as
one array and the first bad row of each bad column is named.
"""

import io

import numpy as np
import pandas as pd

from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS, categories
from service.errors import RequestError
from service.schemas import NUMERIC_BOUNDS


def parse_applicant_csv(body: bytes, max_rows: int) -> dict[str, np.ndarray]:
    """Columns by field name (numeric as float64, categorical as str arrays), validated."""
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
    _check_header(list(frame.columns))
    if len(frame) == 0:
        raise RequestError(422, "body: the CSV has a header but no rows")
    if len(frame) > max_rows:
        raise RequestError(413, f"body: more than {max_rows} rows, the bulk limit")
    details: list[dict[str, str]] = []
    columns: dict[str, np.ndarray] = {}
    for name in NUMERIC_FIELDS:
        values, problem = _numeric_column(frame[name], name)
        if problem:
            details.append(problem)
        columns[name] = values
    for name in CATEGORICAL_FIELDS:
        # Object arrays of str: the encoder maps them with one dict lookup per cell.
        values = frame[name].to_numpy(dtype=object)
        bad = ~frame[name].isin(categories(name)).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            details.append(
                {
                    "location": f"{name}[{row}]",
                    "message": f"Input should be one of {', '.join(categories(name))}; "
                    f"got {values[row]!r}",
                }
            )
        columns[name] = values
    if details:
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise RequestError(422, f"{details[0]['location']}: {details[0]['message']}{more}", details)
    return columns


def _check_header(header: list[str]) -> None:
    missing = [name for name in FIELDS if name not in header]
    unknown = [name for name in header if name not in FIELDS]
    if missing or unknown:
        details = [{"location": name, "message": "Field required"} for name in missing]
        details += [{"location": name, "message": "Unknown field"} for name in unknown]
        raise RequestError(
            422, f"header: {details[0]['location']}: {details[0]['message']}", details
        )


def _numeric_column(column: pd.Series, name: str) -> tuple[np.ndarray, dict[str, str] | None]:
    low, high, _ = NUMERIC_BOUNDS[name]
    if column.dtype.kind not in "if":
        as_numbers = pd.to_numeric(column, errors="coerce")
        row = int(np.argmax(as_numbers.isna().to_numpy()))
        return np.empty(0), {
            "location": f"{name}[{row}]",
            "message": f"Input should be a number; got {column.iloc[row]!r}",
        }
    values = column.to_numpy(dtype=np.float64)
    bad = ~((values >= low) & (values <= high))  # NaN (empty cell) is bad too
    if bad.any():
        row = int(np.argmax(bad))
        return values, {
            "location": f"{name}[{row}]",
            "message": f"Input should be a finite number from {low:g} to {high:g}; "
            f"got {values[row]!r}",
        }
    return values, None
