"""Apache Arrow IPC bodies for bulk scoring: typed columns in (stream or file), decisions out.

JSON bulk bodies cost more to parse and validate than the model costs to run (100k rows: ~63 ms
of Pydantic against ~94 ms of XGBoost); an Arrow body arrives as typed columns, so the checks are
array operations and the numbers are never text. Categorical columns may be plain or
dictionary-encoded strings; Arrow's `index_in` turns them into category codes in C++. A client
that sends `Accept: application/vnd.apache.arrow.stream` gets the decisions back as an Arrow
stream too (probability float32, status dictionary-encoded; the model tag in the schema
metadata): ~0.5 MB for 100k rows instead of ~3 MB of JSON, and nothing to parse.
"""

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import categories
from runners.base import Probabilities
from service.column_checks import BulkColumns, Problem, checked_columns, not_a_number
from service.decisions import STATUSES
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


def _cell_reader(column: pa.ChunkedArray) -> Callable[[int], object]:
    return lambda row: column[row].as_py()


def parse_applicant_arrow(body: bytes, file_format: bool, max_rows: int) -> BulkColumns:
    """Columns by field name (numeric as float64, categorical as codes), validated."""
    table = read_arrow_table(body, file_format)

    def numeric(name: str) -> npt.NDArray[np.float64] | Problem:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return not_a_number(name, 0, f"a column of type {column.type}")
        # A null cell becomes NaN, which the bounds check names.
        return column.to_numpy().astype(np.float64, copy=False)

    def codes(name: str) -> tuple[npt.NDArray[np.integer], Callable[[int], object]] | Problem:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return {
                "location": f"{name}[0]",
                "message": f"Input should be a string column; got type {column.type}",
            }
        allowed = pa.array(categories(name), type=column.type)
        found = pc.fill_null(pc.index_in(column, value_set=allowed), -1).to_numpy()
        return found, _cell_reader(column)

    return checked_columns(table.column_names, table.num_rows, max_rows, numeric, codes)


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
    extra: Mapping[str, npt.NDArray[np.object_]] | None = None,
) -> bytes:
    """An Arrow IPC stream: `probability` (float32) and `status` (dictionary of the three
    statuses, indexed by `levels`), row i for applicant i, then `extra` string columns
    (dictionary-encoded; None is null)."""
    status = pa.DictionaryArray.from_arrays(
        pa.array(levels, type=pa.int8()), pa.array(STATUSES.tolist(), type=pa.string())
    )
    columns = {"probability": pa.array(probabilities, type=pa.float32()), "status": status}
    for name, values in (extra or {}).items():
        columns[name] = pa.array(values, type=pa.string()).dictionary_encode()
    table = pa.table(columns, metadata={"model": model_tag})
    return table_as_ipc(table)
