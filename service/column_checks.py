"""What the request path adds to the shared column checks (features.validation): the header and
row-count checks of a bulk body, and the two ways an invalid cell is answered over HTTP.

By default a bulk request with an invalid cell is refused whole: 422 listing each bad field's
first bad row (`age[3]: must be a number from 18 to 120; got 12`). With per-row verdicts the
valid rows are scored and each invalid row gets status INVALID and the Spark job's error text
(`age: must be a number from 18 to 120; got 12`).
"""

from collections.abc import Iterable

from features.columns import ApplicantColumns, InputSchemaError
from features.schema import FIELDS
from features.validation import InvalidRows, find_invalid_rows, first_problems
from service.errors import MAX_DETAILS, RequestError, too_large


def check_header(header: Iterable[str]) -> None:
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


def check_row_count(n_rows: int, max_rows: int, what: str = "bulk input") -> None:
    if n_rows == 0:
        raise RequestError(422, "body: no rows")
    if n_rows > max_rows:
        raise too_large(what, n_rows, max_rows, "rows")


def check_equal_lengths(lengths: dict[str, int], n_rows: int) -> None:
    """Column-wise input: every field holds `n_rows` values; a field of another length is
    refused, named."""
    short = {name: n for name, n in lengths.items() if n != n_rows}
    if short:
        details = [
            {"location": name, "message": f"has {n} values but other fields have {n_rows}"}
            for name, n in short.items()
        ]
        raise RequestError(422, f"{details[0]['location']}: {details[0]['message']}", details)


def schema_refusal(error: InputSchemaError) -> RequestError:
    """A column whose type no value could pass (a numeric field sent as booleans): the whole
    request is refused, per-row verdicts or not, as the Spark job refuses such an input."""
    field, _, message = str(error).partition(": ")
    return RequestError(422, str(error), [{"location": field, "message": message}])


def refuse_invalid(columns: ApplicantColumns) -> None:
    """422 naming each bad field's first bad row (`income[1200]`), unless every cell passes."""
    problems = first_problems(columns)
    if not problems:
        return
    details = [{"location": p.location, "message": p.message} for p in problems]
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    raise RequestError(422, f"{first['location']}: {first['message']}{more}", details[:MAX_DETAILS])


def verdicts(columns: ApplicantColumns, per_row: bool) -> InvalidRows | None:
    """Per-row verdicts (None when every row passes), or, without `per_row`, a 422 for any
    invalid cell."""
    if not per_row:
        refuse_invalid(columns)
        return None
    invalid = find_invalid_rows(columns)
    return invalid if len(invalid) else None
