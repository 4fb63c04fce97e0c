"""Arrow IPC bodies as a batch client would send them to /classify_bulk."""

import io

import pyarrow as pa

from service.arrow_io import ARROW_FILE


def arrow_body(table: pa.Table, content_type: str) -> bytes:
    sink = io.BytesIO()
    new = pa.ipc.new_file if content_type == ARROW_FILE else pa.ipc.new_stream
    with new(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
