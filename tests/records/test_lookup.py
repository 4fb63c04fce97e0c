"""`python -m service.records lookup` on files and on PostgreSQL, and the README's DuckDB
query over the files."""

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson

from harness.process import PROJECT_ROOT
from service.records.assemble import assemble
from service.records.parquet_sink import ParquetSink
from service.records.postgres_sink import PostgresSink
from tests.records.helpers import make_batch
from tests.records.postgres import PostgresCluster


def run_lookup(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("CREDIT_RISK_DECISION_LOG", None)
    return subprocess.run(
        [sys.executable, "-m", "service.records", "lookup", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=120,
    )


def test_lookup_from_files_finds_rotated_and_journaled_records(tmp_path: Path) -> None:
    log = tmp_path / "decision log"  # a space in the path
    sink = ParquetSink(log, rotate_bytes=1 << 30, rotate_s=3600)
    sink.write(assemble([make_batch("old-one", n=3, seed=1), make_batch("other")], None))
    sink.rotate()  # in a Parquet file
    sink.write(assemble([make_batch("new-one", n=2, seed=2)], None))  # still in the journal
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    for request_id, n in (("old-one", 3), ("new-one", 2)):
        done = run_lookup(request_id, "--log", str(log), cwd=elsewhere)
        assert done.returncode == 0, done.stderr
        records = [orjson.loads(line) for line in done.stdout.splitlines()]
        assert [r["row_index"] for r in records] == list(range(n))
        assert {r["request_id"] for r in records} == {request_id}
        assert set(records[0]) >= {
            "decided_at",
            "route",
            "client",
            "model",
            "probability",
            "status",
            "income",
            "home",
            "reason_1",
            "challenger_model",
        }
    missing = run_lookup("no-such-request", "--log", str(log), cwd=elsewhere)
    assert missing.returncode == 1 and b"no record of request no-such-request" in missing.stderr
    assert missing.stdout == b""
    sink.close()


def test_lookup_from_postgres(postgres: PostgresCluster, tmp_path: Path) -> None:
    sink = PostgresSink(postgres.dsn)
    batch = make_batch("pg-request", n=2, seed=3)
    sink.write(assemble([batch, make_batch("pg-other")], None))
    sink.close()
    done = run_lookup("pg-request", "--log", postgres.dsn, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(r["request_id"], r["row_index"], r["status"]) for r in records] == [
        ("pg-request", 0, batch.status[0]),
        ("pg-request", 1, batch.status[1]),
    ]


def test_readme_duckdb_query_runs_over_the_files(tmp_path: Path) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Decision records", 1)[1]
    query = re.search(r"```sql\n(.*?)```", section, re.S)
    assert query, "the Decision records section shows a DuckDB query"
    sink = ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600)
    sink.write(assemble([make_batch("3f2c9a61", n=2, seed=4), make_batch("x")], None))
    sink.close()
    sql = query.group(1).replace("/var/lib/credit-risk/decisions", str(tmp_path))
    rows = duckdb.connect().execute(sql).fetchall()
    assert len(rows) == 2
