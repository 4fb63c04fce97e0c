"""Where per-row verdicts put the rejected rows: a file (Parquet or CSV by its extension) or any
object with `write(table)`."""

import contextlib
import os
from collections.abc import Iterator
from typing import Protocol, TypeAlias

import pyarrow as pa

from client.outputs import TableFile
from client.results import rejects_schema


class RejectsSink(Protocol):
    def write(self, table: pa.Table) -> None: ...


Rejects: TypeAlias = str | os.PathLike[str] | RejectsSink


@contextlib.contextmanager
def rejects_sink(rejects: Rejects | None, schema: pa.Schema) -> Iterator[RejectsSink | None]:
    """The sink for `rejects` (None: no per-row verdicts). A path becomes a file that is complete
    (renamed from a temporary name) when the block ends without an error, and is removed
    otherwise; any other sink is the caller's to close."""
    if rejects is None or not isinstance(rejects, str | os.PathLike):
        yield rejects
        return
    with TableFile(rejects, rejects_schema(schema)) as file:
        yield file
