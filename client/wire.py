"""The Arrow IPC bodies of /classify_bulk: applicants out, decisions back.

A request body is an Arrow IPC stream holding only the 13 form fields (numbers of any integer or
float type, categories as plain or dictionary-encoded strings). With
`Accept: application/vnd.apache.arrow.stream` the answer is an Arrow stream too: `probability`
(float32) and `status` (dictionary-encoded), row i for applicant i, and the model tag in the
schema metadata under "model".
"""

from dataclasses import dataclass

import pyarrow as pa

from client.errors import ServerError
from features.schema import FIELDS

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def request_body(table: pa.Table) -> bytes:
    """The form-field columns of `table` as an Arrow IPC stream (other columns stay here)."""
    fields = table.select(list(FIELDS)).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, fields.schema) as writer:
        writer.write_table(fields)
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True)
class BulkAnswer:
    probability: pa.Array | pa.ChunkedArray  # float32
    status: pa.Array | pa.ChunkedArray  # dictionary of APPROVED, MAYBE, DECLINED
    model: str

    @property
    def rows(self) -> int:
        return len(self.probability)


def read_answer(content: bytes, rows: int) -> BulkAnswer:
    """An Arrow answer, checked: both columns and the model tag there, one row per applicant."""
    try:
        table = pa.ipc.open_stream(pa.BufferReader(content)).read_all()
    except (pa.ArrowException, OSError) as error:
        raise ServerError(f"answer is not an Arrow stream ({error})") from error
    missing = {"probability", "status"} - set(table.column_names)
    model = (table.schema.metadata or {}).get(b"model")
    if missing or model is None:
        raise ServerError(
            f"Arrow answer lacks {', '.join(sorted(missing)) or 'the model tag in its metadata'}"
        )
    if table.num_rows != rows:
        raise ServerError(f"answer has {table.num_rows} rows for {rows} applicants")
    return BulkAnswer(table.column("probability"), table.column("status"), model.decode())
