"""Column-wise JSON bulk bodies (`{"age": [...], "home": [...], ...}`): orjson, then the one
column reader (features.columns), so JSON bodies get the same checks and messages as CSV, Arrow,
the Open Inference Protocol and the Spark job.

Numbers must be JSON numbers: `"30"` and `true` are no numbers (refused, or INVALID rows with
per-row verdicts), never coerced.
"""

from typing import Any

import orjson

from features.columns import ApplicantColumns, from_values
from service.column_checks import check_equal_lengths, check_header, check_row_count
from service.errors import RequestError


def parse_applicant_json(body: bytes, max_rows: int) -> ApplicantColumns:
    """The form fields of a column-wise JSON body, read (not yet checked against the rules):
    an object of the 13 fields, each an array, all equally long, within the row limit."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"body: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        message = "must be an object with one array per field"
        raise RequestError(422, f"body: {message}", [{"location": "body", "message": message}])
    check_header(document)
    not_arrays = [name for name, values in document.items() if not isinstance(values, list)]
    if not_arrays:
        details = [{"location": name, "message": "must be an array"} for name in not_arrays]
        raise RequestError(422, f"{not_arrays[0]}: must be an array", details)
    lengths = {name: len(values) for name, values in document.items()}
    n_rows = max(lengths.values())
    check_row_count(n_rows, max_rows)
    check_equal_lengths(lengths, n_rows)
    # A JSON text without `true` or `false` holds no boolean: no array needs a scan for one.
    may_hold_booleans = b"true" in body or b"false" in body
    return from_values(document, may_hold_booleans=may_hold_booleans)
