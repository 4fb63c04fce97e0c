"""The same lake through the HTTP client with per-row verdicts (`python -m client score
--rejects`) and through the Spark job: the same rows scored, the same probabilities (1e-6) and
statuses, the same rows rejected with the same error texts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, ServedProcess
from jobs.score import parse_args, run
from tests.jobs.conftest import BAD_ROWS, N_ROWS, applicant_table

pytestmark = pytest.mark.slow

# Beyond the lake's own bad rows: integers past float64's exact range (which used to stop a
# whole Spark task), a fraction in an integer field, a huge and a tiny number.
MORE_BAD: dict[int, tuple[str, object]] = {
    11: ("amount", 2**53 + 1),
    12: ("seniority", 2**63 - 1),
    13: ("income", 1e300),
    14: ("age", 17.999),
    15: ("debt", -1e-300),
}


# Only a CSV can hold these: text that is no number, blank text, a number padded with blanks.
CSV_TEXT: dict[int, tuple[str, str, str | None]] = {
    16: ("age", "forty", "age: must be a number from 18 to 120; got 'forty'"),
    17: ("expenses", "", "expenses: missing value"),
    18: ("time", " 36 ", None),  # a number: scored
}


def _lake(records: list[dict[str, object]], folder: Path) -> dict[str, Path]:
    """The applicants with every bad row, as a Parquet file and as a CSV file (which also has
    CSV_TEXT)."""
    table = applicant_table(records)
    for row, (field, value) in MORE_BAD.items():
        values = table.column(field).to_pylist()
        values[row] = value
        kind = pa.int64() if isinstance(value, int) else pa.float64()
        table = table.set_column(table.schema.get_field_index(field), field, pa.array(values, kind))
    parquet = folder / "applicants.parquet"
    pq.write_table(table, parquet, row_group_size=1_000)
    text = table
    for row, (field, value, _) in CSV_TEXT.items():
        values = [None if v is None else str(v) for v in text.column(field).to_pylist()]
        values[row] = value
        text = text.set_column(text.schema.get_field_index(field), field, pa.array(values))
    csv = folder / "applicants.csv"
    pacsv.write_csv(text, csv)
    return {"parquet": parquet, "csv": csv}


@pytest.fixture(scope="module")
def lake_files(records, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _lake(records, tmp_path_factory.mktemp("parity"))


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_client_and_spark_job_agree(
    server: ServedProcess,
    spark,
    lake_files: dict[str, Path],
    exported: ExportSummary,
    tmp_path: Path,
    kind: str,
) -> None:
    source = lake_files[kind]
    client_out, client_rejects = tmp_path / "client.parquet", tmp_path / "client-rejects.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "client", "score", str(source), str(client_out),
         "--rejects", str(client_rejects), "--url", server.url, "--chunk-rows", "700"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    job_out, job_rejects = tmp_path / "job", tmp_path / "job-rejects"
    job = run(
        parse_args(
            ["--input", str(source), "--output", str(job_out), "--rejects", str(job_rejects),
             "--model", exported.onnx_tag]
        ),
        spark,
    )  # fmt: skip

    rejected = len(BAD_ROWS) + len(MORE_BAD)
    if kind == "csv":
        rejected += sum(error is not None for _, _, error in CSV_TEXT.values())
    assert (summary["rows"], summary["rejected"]) == (N_ROWS, rejected)
    assert (job["rows_in"], job["rejected"]) == (N_ROWS, rejected)

    by_id = "application_id"
    client = pq.read_table(client_out).sort_by(by_id)
    spark_scored = pq.read_table(job_out).sort_by(by_id)
    assert client.column(by_id).equals(spark_scored.column(by_id))
    np.testing.assert_allclose(
        client.column("probability").to_numpy(),
        spark_scored.column("probability").to_numpy(),
        atol=1e-6,
    )
    assert client.column("status").to_pylist() == spark_scored.column("status").to_pylist()
    assert set(client.column("model").to_pylist()) == {exported.onnx_tag}

    client_bad = pq.read_table(client_rejects).sort_by(by_id)
    spark_bad = pq.read_table(job_rejects).sort_by(by_id)
    assert client_bad.column(by_id).equals(spark_bad.column(by_id))
    assert client_bad.column("error").to_pylist() == spark_bad.column("error").to_pylist()
    errors = dict(
        zip(
            client_bad.column(by_id).to_pylist(),
            client_bad.column("error").to_pylist(),
            strict=True,
        )
    )
    assert errors["A000011"] == f"amount: must be a number from 0 to 1e+09; got {2**53 + 1}"
    assert errors["A000014"] == "age: must be a number from 18 to 120; got 17.999"
    # Quoted as sent: the CSV holds the float column's text, 12.0.
    assert errors["A000003"] == BAD_ROWS[3][1] + (".0" if kind == "csv" else "")
    if kind == "csv":
        assert errors["A000016"] == CSV_TEXT[16][2] and errors["A000017"] == CSV_TEXT[17][2]
