"""A small applicant lake (Parquet and CSV, with known bad rows) and one local Spark session
shared by the in-process job tests."""

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from features.schema import FIELDS
from harness.process import PROJECT_ROOT
from jobs.session import start_session

N_ROWS = 3_000
INTEGER_FIELDS = ("seniority", "time", "age", "expenses", "amount")
# Row -> changed fields, and the error the job must give that row.
BAD_ROWS: dict[int, tuple[dict[str, object], str]] = {
    3: ({"age": 12}, "age: must be a number from 18 to 120; got 12"),
    5: (
        {"home": "castle"},
        "home: must be one of unk, rent, owner, private, ignore, parents, other; got 'castle'",
    ),
    7: ({"income": None}, "income: missing value"),
    9: (
        {"amount": -5, "job": "pilot"},
        "job: must be one of unk, fixed, partime, freelance, others; got 'pilot'",
    ),
    1200: ({"price": float("inf")}, "price: must be a number from 0 to 1e+09; got inf"),
    2999: ({"marital": None}, "marital: missing value"),
}


def applicant_table(records: list[dict[str, object]], n_rows: int = N_ROWS) -> pa.Table:
    """`n_rows` applicants with an id and a branch (carried columns) and the BAD_ROWS changes;
    money fields that may be missing are nullable floats, the rest integers, as in a lake."""
    rows = [dict(records[i % len(records)]) for i in range(n_rows)]
    for i, (changes, _) in BAD_ROWS.items():
        rows[i].update(changes)
    columns: dict[str, pa.Array] = {
        "application_id": pa.array([f"A{i:06d}" for i in range(n_rows)]),
        "branch": pa.array(np.array(["north", "south", "east"])[np.arange(n_rows) % 3]),
    }
    for name in FIELDS:
        values = [r[name] for r in rows]
        if name in INTEGER_FIELDS:
            columns[name] = pa.array([None if v is None else int(v) for v in values], pa.int64())  # type: ignore[call-overload]
        elif isinstance(values[0], str):
            columns[name] = pa.array(values, pa.string())
        else:
            columns[name] = pa.array(values, pa.float64())
    return pa.table(columns)


@pytest.fixture(scope="session")
def lake(records, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same applicants as a folder of three Parquet files and as one CSV file."""
    root = tmp_path_factory.mktemp("lake")
    table = applicant_table(records)
    (root / "parquet").mkdir()
    for part, start in enumerate(range(0, N_ROWS, 1_000)):
        pq.write_table(table.slice(start, 1_000), root / "parquet" / f"part-{part}.parquet")
    csv = root / "applicants.csv"
    pacsv.write_csv(table, csv)
    return {"parquet": root / "parquet", "csv": csv, "root": root}


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """One embedded session (local[2], loopback) for a whole test module."""
    session = start_session("local[2]")
    yield session
    session.stop()


def run_job(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.score ARGS` from the project root with exactly `env`."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.score", *args],
        cwd=PROJECT_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def last_line(text: str) -> str:
    """The last non-blank line of a job's output (a progress bar's carriage returns split)."""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""
