"""Apache Arrow IPC bodies for bulk scoring: typed columns in (stream or file), decisions out.

JSON bulk bodies cost more to parse and validate than the model costs to run (100k rows: ~63 ms
of Pydantic against ~94 ms of XGBoost); an Arrow body arrives as typed columns, so the checks are
array operations and the numbers are never text. Categorical columns may be plain or
dictionary-encoded strings; Arrow's `index_in` turns them into category codes in C++. A client
that sends `Accept: application/vnd.apache.arrow.stream` gets the decisions back as an Arrow
stream too (probability float32, status dictionary-encoded; the model tag in the schema
metadata): ~0.5 MB for 100k rows instead of ~3 MB of JSON, and nothing to parse.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS, categories
from runners.base import Probabilities
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
from service.decisions import STATUSES
from service.errors import RequestError

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"


def read_arrow_table(body: bytes, content_type: str) -> pa.Table:
    try:
        if content_type == ARROW_FILE:
            return pa.ipc.open_file(pa.BufferReader(body)).read_all()
        return pa.ipc.open_stream(pa.BufferReader(body)).read_all()
    except (pa.ArrowException, ValueError, OSError) as error:
        raise RequestError(400, f"body: not a readable Arrow {content_type} ({error})") from error


def _cell_reader(column: pa.ChunkedArray) -> Callable[[int], object]:
    return lambda row: column[row].as_py()


def parse_applicant_arrow(body: bytes, content_type: str, max_rows: int) -> BulkColumns:
    """Columns by field name (numeric as float64, categorical as codes), validated."""
    table = read_arrow_table(body, content_type)
    check_header(table.column_names)
    check_row_count(table.num_rows, max_rows)
    problems: list[Problem | None] = []
    columns: BulkColumns = {}
    for name in NUMERIC_FIELDS:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            problems.append(not_a_number(name, 0, f"a column of type {column.type}"))
            continue
        # A null cell becomes NaN, which the bounds check names.
        values = column.to_numpy().astype(np.float64, copy=False)
        problems.append(numeric_problem(name, values))
        columns[name] = values
    for name in CATEGORICAL_FIELDS:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            problems.append(
                {
                    "location": f"{name}[0]",
                    "message": f"Input should be a string column; got type {column.type}",
                }
            )
            continue
        allowed = pa.array(categories(name), type=column.type)
        codes = pc.fill_null(pc.index_in(column, value_set=allowed), -1).to_numpy()
        columns[name], problem = category_codes(name, codes, _cell_reader(column))
        problems.append(problem)
    raise_problems(problems)
    return columns


def decisions_as_arrow(
    model_tag: str, probabilities: Probabilities, levels: npt.NDArray[np.int8]
) -> bytes:
    """An Arrow IPC stream: `probability` (float32) and `status` (dictionary of the three
    statuses, indexed by `levels`), row i for applicant i."""
    status = pa.DictionaryArray.from_arrays(
        pa.array(levels, type=pa.int8()), pa.array(STATUSES.tolist(), type=pa.string())
    )
    table = pa.table(
        {"probability": pa.array(probabilities, type=pa.float32()), "status": status},
        metadata={"model": model_tag},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
