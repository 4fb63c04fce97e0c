"""Writing results to a file as they come: Parquet, or CSV by the file's extension.

A file is written under a temporary name beside it and renamed when complete, so a job that fails
halfway leaves no output that looks complete.
"""

import os
from pathlib import Path
from types import TracebackType
from typing import Self

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from client.errors import InputError

OUTPUT_KINDS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def output_kind(path: Path) -> str:
    kind = OUTPUT_KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: the output must end in {', '.join(OUTPUT_KINDS)}")
    return kind


class TableFile:
    """Tables of one schema appended to `path`; `close()` completes the file (one with no rows
    still gets the schema's columns), leaving it without closing removes the partial file."""

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema) -> None:
        self.path = Path(path)
        self.kind = output_kind(self.path)
        self.schema = schema
        self.rows = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._writer: pq.ParquetWriter | pcsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = self._open(table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Completes the file: renamed from its temporary name."""
        if self._writer is None:
            self._writer = self._open(self.schema)
        self._writer.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._partial.unlink(missing_ok=True)

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter | pcsv.CSVWriter:
        if self.kind == "parquet":
            return pq.ParquetWriter(self._partial, schema)
        return pcsv.CSVWriter(self._partial, schema)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        else:
            self.abort()
