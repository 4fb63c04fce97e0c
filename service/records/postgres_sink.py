"""Records in PostgreSQL: table credit_risk_decisions (created when missing), one COPY per
flush through psycopg 3.

Each flush is one transaction: a table is in the database whole or not at all, so a failed
COPY is spooled and written again later without duplicating rows. (A commit whose answer is
lost, the connection dropping just after, can write a table twice: delivery is at least
once, and (request_id, row_index) identifies a decision.) The table is sent as CSV made by
Arrow's C++ writer: text Python never touches row by row.
"""

import contextlib
import io
import logging
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv

from service.records.schema import COLUMNS, TABLE, postgres_ddl
from service.records.sink import SinkError

logger = logging.getLogger("credit_risk")
_COPY = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)"
_DDL_LOCK = 0x6372_6563  # pg_advisory_xact_lock key: one worker creates the table at a time
# Strings are quoted (an empty string stays one), nulls are bare empty fields (NULL in CSV).
_CSV = pcsv.WriteOptions(include_header=False, quoting_style="needed")


class PostgresSink:
    def __init__(self, dsn: str, *, connect_timeout_s: float = 3.0) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._connection: psycopg.Connection[Any] | None = None

    def write(self, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pcsv.write_csv(table, buffer, _CSV)
        try:
            connection = self._connect()
            with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                copy.write(buffer.getbuffer())
            connection.commit()
        except psycopg.Error as error:
            self._drop_connection()
            raise SinkError(f"PostgreSQL: {type(error).__name__}") from error

    def delete_before(self, cutoff: float) -> int:
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {TABLE} WHERE decided_at < to_timestamp(%s)", (cutoff,)
                )
                deleted = cursor.rowcount
            connection.commit()
        except psycopg.Error as error:
            self._drop_connection()
            raise SinkError(f"PostgreSQL: {type(error).__name__}") from error
        return max(deleted, 0)

    def maintain(self) -> None:
        pass

    def close(self) -> None:
        self._drop_connection()

    def _connect(self) -> "psycopg.Connection[Any]":
        if self._connection is not None and not self._connection.closed:
            return self._connection
        connection = psycopg.connect(
            self.dsn, connect_timeout=max(1, round(self.connect_timeout_s)), autocommit=False
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                for statement in postgres_ddl():
                    cursor.execute(statement.encode())
            connection.commit()
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()
