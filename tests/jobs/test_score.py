"""The Spark job in-process on one shared local session: answers equal /classify_bulk's, every
column carried, rejects with their errors, reconciled counts, CSV and Parquet, rollback."""

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from export.pipeline import ExportSummary, run_export
from features.schema import FIELDS
from jobs.columns import InputSchemaError
from jobs.score import MIN_SPREAD_ROWS, JobError, parse_args, run
from tests.jobs.conftest import BAD_ROWS, N_ROWS, applicant_table
from tests.reference import reference_probabilities

pytestmark = pytest.mark.slow


def score(
    spark, tmp_path: Path, source: Path, *extra: str
) -> tuple[dict[str, Any], pa.Table, pa.Table]:
    out, rej = tmp_path / "out", tmp_path / "rejects"
    args = ["--input", str(source), "--output", str(out), "--rejects", str(rej), *extra]
    summary = run(parse_args(args), spark)
    for folder in (out, rej):
        names = sorted(p.name for p in folder.iterdir())
        assert "_SUCCESS" in names and "_temporary" not in names, names
    return summary, _by_id(pq.read_table(out)), _by_id(pq.read_table(rej))


def _by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("application_id")


@pytest.fixture(scope="module")
def parquet_run(
    spark, lake, exported: ExportSummary, tmp_path_factory
) -> tuple[dict[str, Any], pa.Table, pa.Table]:
    tmp = tmp_path_factory.mktemp("parquet-run")
    return score(spark, tmp, lake["parquet"], "--model", exported.onnx_tag)


def test_counts_reconcile_and_the_summary_names_the_model(parquet_run, exported) -> None:
    summary, scored, rejects = parquet_run
    assert summary["rows_in"] == N_ROWS
    assert summary["rejected"] == len(BAD_ROWS) == rejects.num_rows
    assert summary["scored"] == N_ROWS - len(BAD_ROWS) == scored.num_rows
    assert summary["model"] == exported.onnx_tag and summary["input_format"] == "parquet"
    assert summary["partitions"] >= 1 and summary["rows_per_s"] > 0


def test_every_input_column_is_carried_unchanged(parquet_run, records) -> None:
    _, scored, rejects = parquet_run
    table = applicant_table(records)
    valid = [i for i in range(N_ROWS) if i not in BAD_ROWS]
    assert scored.column_names == [*table.column_names, "probability", "status", "model"]
    assert rejects.column_names == [*table.column_names, "error"]
    assert scored.select(table.column_names).equals(table.take(valid))
    assert rejects.select(table.column_names).equals(table.take(sorted(BAD_ROWS)))
    assert scored.schema.field("probability").type == pa.float32()


def test_rejects_name_the_field_and_the_rule(parquet_run) -> None:
    _, _, rejects = parquet_run
    assert rejects.column("application_id").to_pylist() == [f"A{i:06d}" for i in sorted(BAD_ROWS)]
    assert rejects.column("error").to_pylist() == [BAD_ROWS[i][1] for i in sorted(BAD_ROWS)]


def test_answers_equal_classify_bulk(parquet_run, server, exported) -> None:
    """The same valid rows posted to the server's bulk route get the same numbers (1e-6), the
    same statuses and the same model tag."""
    _, scored, _ = parquet_run
    body = {name: scored.column(name).to_pylist() for name in FIELDS}
    answer = httpx.post(f"{server.url}/classify_bulk", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    online = answer.json()
    np.testing.assert_allclose(
        scored.column("probability").to_numpy(), online["probability"], rtol=0, atol=1e-6
    )
    assert scored.column("status").to_pylist() == online["status"]
    assert set(scored.column("model").to_pylist()) == {online["model"]} == {exported.onnx_tag}


def test_csv_input_scores_the_same_and_carries_text(
    spark, lake, parquet_run, exported, tmp_path
) -> None:
    summary, scored, rejects = score(spark, tmp_path, lake["csv"], "--model", exported.onnx_tag)
    _, parquet_scored, parquet_rejects = parquet_run
    assert summary["input_format"] == "csv"
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (
        N_ROWS, N_ROWS - len(BAD_ROWS), len(BAD_ROWS),
    )  # fmt: skip
    # CSV has no types: every carried column is the file's text, unchanged.
    assert all(pa.types.is_string(scored.schema.field(name).type) for name in FIELDS)
    assert scored.column("age").to_pylist()[:3] == [
        str(v) for v in parquet_scored.column("age").to_pylist()[:3]
    ]
    np.testing.assert_allclose(
        scored.column("probability").to_numpy(),
        parquet_scored.column("probability").to_numpy(),
        rtol=0,
        atol=1e-6,
    )
    assert rejects.column("application_id").equals(parquet_rejects.column("application_id"))
    # The same rules; a CSV cell is quoted as the text it was ("inf" is no number in CSV).
    errors = dict(
        zip(
            rejects.column("application_id").to_pylist(),
            rejects.column("error").to_pylist(),
            strict=True,
        )
    )
    assert errors["A001200"] == "price: must be a number from 0 to 1e+09; got 'inf'"
    assert errors["A000003"] == BAD_ROWS[3][1] and errors["A000007"] == BAD_ROWS[7][1]


def test_csv_text_that_is_no_number_is_rejected_not_coerced(
    spark, lake, tmp_path, exported
) -> None:
    text = (lake["csv"]).read_text().splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index('"age"')] = '"thirty"'
    cells[header.index('"time"')] = " 36 "  # blanks around a number are fine
    source = tmp_path / "one.csv"
    source.write_text("\n".join([text[0], ",".join(cells), text[2]]) + "\n")
    summary, _scored, rejects = score(spark, tmp_path, source, "--model", exported.onnx_tag)
    assert (summary["scored"], summary["rejected"]) == (1, 1)
    assert rejects.column("error").to_pylist() == [
        "age: must be a number from 18 to 120; got 'thirty'"
    ]


def test_rollback_tag_scores_with_the_old_model(
    spark, lake, parquet_run, exported, tmp_path
) -> None:
    """After a newer export, the default tag (latest) scores with it; `--model <old tag>`
    scores with the old one, each matching that model's own predictions."""
    newer = run_export(seed=2)
    summary, latest, _ = score(spark, tmp_path / "latest", lake["parquet"])
    assert summary["model"] == newer.onnx_tag
    assert set(latest.column("model").to_pylist()) == {newer.onnx_tag}
    _, old, _ = parquet_run  # scored with --model <first export>
    assert set(old.column("model").to_pylist()) == {exported.onnx_tag}
    every_fifth = list(range(0, latest.num_rows, 5))
    for table, model in ((latest, newer), (old, exported)):
        rows = table.take(every_fifth)
        np.testing.assert_allclose(
            rows.column("probability").to_numpy(),
            reference_probabilities(model, rows.select(list(FIELDS)).to_pylist()),
            rtol=0,
            atol=1e-6,
        )
    gap = np.abs(latest.column("probability").to_numpy() - old.column("probability").to_numpy())
    assert gap.max() > 1e-3  # really two different models


def test_a_parquet_number_column_of_text_is_refused_before_scoring(
    spark, records, tmp_path, exported
) -> None:
    table = applicant_table(records).slice(10, 20)
    table = table.set_column(
        table.column_names.index("age"), "age", pc.cast(table.column("age"), pa.string())
    )
    pq.write_table(table, tmp_path / "text-age.parquet")
    with pytest.raises(InputSchemaError, match="age: must be a numeric column; got type string"):
        score(spark, tmp_path, tmp_path / "text-age.parquet", "--model", exported.onnx_tag)


def test_a_missing_field_is_refused_before_scoring(spark, records, tmp_path, exported) -> None:
    pq.write_table(
        applicant_table(records).slice(0, 5).drop_columns(["job"]), tmp_path / "no-job.parquet"
    )
    with pytest.raises(InputSchemaError, match="job: column missing from the input"):
        score(spark, tmp_path, tmp_path / "no-job.parquet", "--model", exported.onnx_tag)


def test_reason_columns_equal_classify_bulk_with_reasons(
    spark, lake, server, exported: ExportSummary, tmp_path: Path
) -> None:
    """`--reasons 3` adds reason_1..3, equal to the server's `/classify_bulk?reasons=3`."""
    _, scored, _ = score(
        spark, tmp_path, lake["parquet"], "--model", exported.onnx_tag, "--reasons", "3"
    )
    assert scored.column_names[-4:] == ["model", "reason_1", "reason_2", "reason_3"]
    body = {name: scored.column(name).to_pylist() for name in FIELDS}
    online = httpx.post(f"{server.url}/classify_bulk?reasons=3", json=body, timeout=120).json()
    for rank in (1, 2, 3):
        assert scored.column(f"reason_{rank}").to_pylist() == online[f"reason_{rank}"]
    approved = scored.filter(pc.equal(scored.column("status"), "APPROVED"))
    assert approved.num_rows > 0 and approved.column("reason_1").null_count == approved.num_rows


def test_a_file_spark_cannot_decode_leaves_no_output_folders(
    spark, records, tmp_path, exported
) -> None:
    """A footer that reads well over pages that do not (found by Spark, not by the check
    before it): one JobError, and neither output folder is left behind."""
    path = tmp_path / "damaged.parquet"
    pq.write_table(applicant_table(records), path)
    data = bytearray(path.read_bytes())
    data[4:600] = b"\xff" * 596  # the first column chunk's page header and values
    path.write_bytes(bytes(data))
    out, rej = tmp_path / "out", tmp_path / "rejects"
    args = ["--input", str(path), "--output", str(out), "--rejects", str(rej)]
    with pytest.raises(JobError, match=f"^cannot score {re.escape(str(path))}: "):
        run(parse_args([*args, "--model", exported.onnx_tag]), spark)
    assert not out.exists() and not rej.exists()


def test_one_row_group_is_spread_over_the_cores(spark, records, tmp_path, exported) -> None:
    """A file of one row group is read by one task; the job spreads it over the session's
    cores (2 here) and the summary counts the tasks that scored rows."""
    base = applicant_table(records)
    table = pa.concat_tables([base] * (MIN_SPREAD_ROWS // base.num_rows + 1))
    ids = pa.array([f"B{i:07d}" for i in range(table.num_rows)])
    table = table.set_column(0, "application_id", ids)
    pq.write_table(table, tmp_path / "one-group.parquet", row_group_size=table.num_rows)
    source = tmp_path / "one-group.parquet"
    spread_run, scored, _ = score(spark, tmp_path / "spread", source, "--model", exported.onnx_tag)
    kept, _, _ = score(
        spark, tmp_path / "kept", source, "--model", exported.onnx_tag, "--keep-layout"
    )
    assert spark.sparkContext.defaultParallelism == 2
    assert (spread_run["spread_to"], spread_run["tasks"]) == (2, 2)
    assert (kept["spread_to"], kept["tasks"]) == (0, 1)
    assert (
        spread_run["rows_in"]
        == kept["rows_in"]
        == table.num_rows
        == scored.num_rows + (spread_run["rejected"])
    )
    assert scored.column("application_id").to_pylist() == sorted(
        set(scored.column("application_id").to_pylist())
    )  # every row once
