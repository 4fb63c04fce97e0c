"""`python -m client` end to end, as a separate process against a real server."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, ServedProcess
from tests.client.conftest import CHUNK_ROWS, Applicants
from tests.client.test_client import (
    BAD_ROWS,
    TOLERANCE,
    _check_rejects,
    _check_scored,
    _with_bad_rows,
)

pytestmark = pytest.mark.slow


def _client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_score_parquet_to_csv_with_a_json_summary(
    server: ServedProcess, applicants: Applicants, exported: ExportSummary, tmp_path
) -> None:
    source, out = tmp_path / "applicants.parquet", tmp_path / "decisions.csv"
    pq.write_table(applicants.table, source)
    done = _client(
        "score", str(source), str(out), "--url", server.url,
        "--chunk-rows", str(CHUNK_ROWS), "--concurrency", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["rows"] == applicants.table.num_rows
    assert summary["model"] == exported.onnx_tag
    assert summary["rows_per_s"] > 0 and summary["seconds"] > 0
    types = {"application_id": pa.string(), "status": pa.string(), "model": pa.string()}
    result = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(column_types=types))
    _check_scored(result, applicants, exported.onnx_tag)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, out.name])


def test_score_bad_row_fails_naming_it_and_leaves_no_output(
    server: ServedProcess, applicants: Applicants, tmp_path
) -> None:
    ages = applicants.table.column("age").to_pylist()
    ages[11_999] = 12
    table = applicants.table.set_column(
        applicants.table.schema.get_field_index("age"), "age", pa.array(ages)
    )
    source, out = tmp_path / "applicants.csv", tmp_path / "decisions.parquet"
    pcsv.write_csv(table, source)
    done = _client("score", str(source), str(out), "--url", server.url, "--chunk-rows", "5000")
    assert done.returncode == 1
    assert "age[11999]: must be a number from 18 to 120; got 12" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


def test_score_with_rejects_keeps_going_and_counts(
    server: ServedProcess, applicants: Applicants, tmp_path
) -> None:
    table = _with_bad_rows(applicants.table)
    source, out = tmp_path / "applicants.parquet", tmp_path / "decisions.parquet"
    rejects = tmp_path / "rejects.csv"
    pq.write_table(table, source)
    done = _client(
        "score", str(source), str(out), "--rejects", str(rejects), "--url", server.url,
        "--chunk-rows", str(CHUNK_ROWS),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["rows"] == table.num_rows == summary["scored"] + summary["rejected"]
    assert summary["rejected"] == len(BAD_ROWS) and summary["rejects"] == str(rejects)
    read = pcsv.read_csv(rejects, convert_options=pcsv.ConvertOptions(column_types=table.schema))
    _check_rejects(pq.read_table(out), read, table, applicants)


def test_classify_one_applicant(
    server: ServedProcess, records, expected_probability, exported: ExportSummary
) -> None:
    done = _client("classify", "--url", server.url, json.dumps(records[3]))
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    assert decision["model"] == exported.onnx_tag
    np.testing.assert_allclose(decision["probability"], expected_probability[3], atol=TOLERANCE)


def test_score_empty_input_writes_an_empty_output(applicants: Applicants, tmp_path) -> None:
    """No rows, no request (nothing listens on this port), and still an output to read."""
    source, out = tmp_path / "none.parquet", tmp_path / "none-decisions.parquet"
    pq.write_table(applicants.table.slice(0, 0), source)
    done = _client("score", str(source), str(out), "--url", "http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["rows"] == 0
    result = pq.read_table(out)
    assert result.num_rows == 0
    assert result.column_names == ["application_id", "branch", "probability", "status", "model"]
