"""The Arrow IPC bodies of /classify_bulk: applicants out, decisions back.

A request body is an Arrow IPC stream holding only the 13 form fields (numbers of any integer or
float type, categories as plain or dictionary-encoded strings). With
`Accept: application/vnd.apache.arrow.stream` the answer is an Arrow stream too: `probability`
(float32) and `status` (dictionary-encoded), row i for applicant i, and the model tag in the
schema metadata under "model". With per-row verdicts (`?per_row=true`) the answer also has
`error`: null for a scored row; for an invalid one (status INVALID, null probability) the field
and the rule it breaks. When a canary split the rows between two models, `row_model` names the
one that decided each row (the metadata's model is the champion).
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
    status: pa.Array | pa.ChunkedArray  # dictionary of APPROVED, MAYBE, DECLINED (, INVALID)
    model: str
    error: pa.Array | pa.ChunkedArray | None = None  # per-row verdicts: null for a scored row
    # A canary's split: the tag that decided each row (None: `model` decided every row)
    row_model: pa.Array | pa.ChunkedArray | None = None

    @property
    def rows(self) -> int:
        return len(self.probability)


def read_answer(content: bytes, rows: int, per_row: bool = False) -> BulkAnswer:
    """An Arrow answer, checked: both columns (and `error` for per-row verdicts) and the model
    tag there, one row per applicant."""
    try:
        table = pa.ipc.open_stream(pa.BufferReader(content)).read_all()
    except (pa.ArrowException, OSError) as error:
        raise ServerError(f"answer is not an Arrow stream ({error})") from error
    wanted = {"probability", "status", "error"} if per_row else {"probability", "status"}
    missing = wanted - set(table.column_names)
    model = (table.schema.metadata or {}).get(b"model")
    if missing or model is None:
        raise ServerError(
            f"Arrow answer lacks {', '.join(sorted(missing)) or 'the model tag in its metadata'}"
        )
    if table.num_rows != rows:
        raise ServerError(f"answer has {table.num_rows} rows for {rows} applicants")
    errors = table.column("error") if per_row else None
    deciders = table.column("row_model") if "row_model" in table.column_names else None
    return BulkAnswer(
        table.column("probability"), table.column("status"), model.decode(), errors, deciders
    )
