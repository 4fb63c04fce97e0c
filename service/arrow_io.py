"""Apache Arrow IPC bodies for bulk scoring: typed columns in (stream or file), decisions out.

JSON bulk bodies cost more to parse and validate than the model costs to run (100k rows: ~63 ms
of Pydantic against ~94 ms of XGBoost); an Arrow body arrives as typed columns, so the checks are
array operations and the numbers are never text. Categorical columns may be plain or
dictionary-encoded strings; Arrow's `index_in` turns them into category codes in C++. A client
that sends `Accept: application/vnd.apache.arrow.stream` gets the decisions back as an Arrow
stream too (probability float32, status dictionary-encoded; the model tag in the schema
metadata): ~0.5 MB for 100k rows instead of ~3 MB of JSON, and nothing to parse.
"""

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from features.columns import ApplicantColumns, InputSchemaError, from_arrow
from features.thresholds import ROW_STATUSES
from runners.base import Probabilities
from service.column_checks import check_header, check_row_count, schema_refusal
from service.errors import RequestError


def read_arrow_table(body: bytes, file_format: bool) -> pa.Table:
    """An Arrow IPC stream (or, with `file_format`, an IPC file) as a table."""
    kind = "file" if file_format else "stream"
    try:
        if file_format:
            return pa.ipc.open_file(pa.BufferReader(body)).read_all()
        return pa.ipc.open_stream(pa.BufferReader(body)).read_all()
    except (pa.ArrowException, ValueError, OSError) as error:
        raise RequestError(400, f"body: not a readable Arrow IPC {kind} ({error})") from error


def parse_applicant_arrow(body: bytes, file_format: bool, max_rows: int) -> ApplicantColumns:
    """The form fields of an Arrow body, read (not yet checked against the rules): the header,
    the row count and each column's type are checked here."""
    table = read_arrow_table(body, file_format)
    check_header(table.column_names)
    check_row_count(table.num_rows, max_rows)
    try:
        return from_arrow(table)
    except InputSchemaError as error:
        raise schema_refusal(error) from error


def table_as_ipc(table: pa.Table, file_format: bool = False) -> bytes:
    """`table` as an Arrow IPC stream (or, with `file_format`, an IPC file) body."""
    sink = pa.BufferOutputStream()
    new = pa.ipc.new_file if file_format else pa.ipc.new_stream
    with new(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decisions_as_arrow(
    model_tag: str,
    probabilities: Probabilities,
    levels: npt.NDArray[np.int8],
    extra: Mapping[str, npt.NDArray[np.object_] | list[str | None] | pa.Array] | None = None,
    invalid: npt.NDArray[np.bool_] | None = None,
) -> bytes:
    """An Arrow IPC stream: `probability` (float32) and `status` (dictionary of the statuses,
    indexed by `levels`), row i for applicant i, then `extra` string columns (None is null;
    dictionary-encoded, but for an Arrow array, which is sent as it is).
    `invalid` (per-row verdicts) marks the rows that were not scored: null probability."""
    status = pa.DictionaryArray.from_arrays(
        pa.array(levels, type=pa.int8()), pa.array(ROW_STATUSES, type=pa.string())
    )
    mask = None if invalid is None else np.asarray(invalid, dtype=np.bool_)
    columns = {
        "probability": pa.array(probabilities, type=pa.float32(), mask=mask),
        "status": status,
    }
    for name, values in (extra or {}).items():
        if isinstance(values, pa.Array):  # as it is (the per-row `error` column)
            columns[name] = values
        else:
            columns[name] = pa.array(values, type=pa.string()).dictionary_encode()
    table = pa.table(columns, metadata={"model": model_tag})
    return table_as_ipc(table)
