"""The records of one request id, from Parquet files or PostgreSQL.

From a directory it reads the dataset, the workers' journals (records written within the
last rotation) and the spool (records waiting for the sink), so a record is found within a
flush interval of its decision.
"""

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from service.records.parquet_sink import JOURNAL_PREFIX, JOURNAL_SUFFIX, read_journal
from service.records.schema import COLUMNS, SCHEMA, TABLE
from service.records.spool import Spool
from service.records.target import Target


def lookup(target: Target, request_id: str, spool_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every record of `request_id`, ordered by row_index (duplicates from an at-least-once
    replay included)."""
    if target.dsn is not None:
        rows = _from_postgres(target.dsn, request_id)
    else:
        assert target.directory is not None
        rows = _from_files(target.directory, request_id, spool_dir or target.default_spool())
    return sorted(rows, key=lambda row: (row["row_index"], row["decided_at"]))


def as_json_ready(record: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, dt.datetime) else value
        for name, value in record.items()
    }


def _from_files(directory: Path, request_id: str, spool_dir: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        raise FileNotFoundError(f"no decision log directory {directory}")
    wanted = pc.field("request_id") == request_id
    tables = [ds.dataset(directory, format="parquet", schema=SCHEMA).to_table(filter=wanted)]
    for journal in sorted(directory.glob(f"{JOURNAL_PREFIX}-*{JOURNAL_SUFFIX}")):
        tables.append(read_journal(journal).filter(wanted))
    if spool_dir.is_dir():
        for path in Spool(spool_dir, max_bytes=0).files():
            with pa.OSFile(str(path), "rb") as source:
                tables.append(pa.ipc.open_file(source).read_all().filter(wanted))
    rows: list[dict[str, Any]] = pa.concat_tables(tables).to_pylist()
    return rows


def _from_postgres(dsn: str, request_id: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dsn, row_factory=dict_row) as connection:
        found = connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE request_id = %s", (request_id,)
        ).fetchall()
    return [dict(row) for row in found]
