"""CSV bulk upload: Arrow's CSV reader, then the one column reader (features.columns), so a CSV
body is read as the Spark job reads a CSV lake.

Numeric fields are parsed as float64 in C++; only when a cell is no number is the body read again
with the numeric fields as text, which the column reader parses cell by cell (the text that is no
number is then quoted in its error). An empty cell is a missing value, whatever its field, as
Spark reads a CSV; any other text is read as written.
"""

import pyarrow as pa
import pyarrow.csv as pcsv

from features.columns import ApplicantColumns, InputSchemaError, from_arrow
from features.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS
from service.column_checks import check_header, check_row_count, schema_refusal
from service.errors import RequestError


def parse_applicant_csv(body: bytes, max_rows: int) -> ApplicantColumns:
    """The form fields of a CSV body with a header line, read (not yet checked against the
    rules): the header and the row count are checked here."""
    try:
        table = _read(body, numbers_as_text=False)
    except pa.ArrowInvalid:
        table = None  # a cell that is no number (or a malformed body: read again to tell)
    if table is None:
        try:
            table = _read(body, numbers_as_text=True)
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise RequestError(400, f"body: not a readable CSV ({error})") from error
    check_header(table.column_names)
    check_row_count(table.num_rows, max_rows)
    try:
        return from_arrow(table, text_numbers=True)
    except InputSchemaError as error:
        raise schema_refusal(error) from error


def _read(body: bytes, *, numbers_as_text: bool) -> pa.Table:
    number = pa.string() if numbers_as_text else pa.float64()
    types = dict.fromkeys(NUMERIC_FIELDS, number) | dict.fromkeys(CATEGORICAL_FIELDS, pa.string())
    return pcsv.read_csv(
        pa.BufferReader(body),
        read_options=pcsv.ReadOptions(use_threads=False),
        convert_options=pcsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True
        ),
    )
