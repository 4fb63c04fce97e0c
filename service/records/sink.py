"""What a record sink does (Parquet files, PostgreSQL)."""

from typing import Protocol

import pyarrow as pa


class SinkError(Exception):
    """The sink could not take a table (it is down, or its disk is full); the message holds no
    record contents."""


class Sink(Protocol):
    def write(self, table: pa.Table) -> None:
        """Writes every row of `table` durably, or raises SinkError having written none."""
        ...

    def maintain(self) -> None:
        """Periodic upkeep (file rotation), called after every flush, also when idle."""
        ...

    def delete_before(self, cutoff: float) -> int:
        """Deletes records decided before `cutoff` (epoch seconds); raises SinkError."""
        ...

    def close(self) -> None: ...
