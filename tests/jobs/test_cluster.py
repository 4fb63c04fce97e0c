"""The job on a real Spark standalone cluster: a master and one worker (1 core) started on
loopback from the installed pyspark with spark-daemon.sh (harness.spark_cluster), the job run
as an operator runs it, `python -m jobs.score --master spark://127.0.0.1:PORT`."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.spark_cluster import StandaloneCluster, standalone_cluster
from jobs.score import parse_args, run
from jobs.session import APP_NAME
from tests.jobs.conftest import BAD_ROWS, applicant_table, last_line, run_job

pytestmark = pytest.mark.slow
ROWS = 20_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), cores=1) as started:
        yield started


@pytest.fixture(scope="module")
def cluster_input(records, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROWS applicants, BAD_ROWS among them invalid, in one Parquet file of one row group."""
    path = tmp_path_factory.mktemp("cluster-lake") / "applicants.parquet"
    pq.write_table(applicant_table(records, ROWS), path)
    return path


def _wrapper(path: Path, marker: Path, python: str, *flags: str) -> Path:
    """An executable that leaves `marker` and runs `python` (with `flags`)."""
    path.write_text(f'#!/bin/sh\necho "$$" >> "{marker}"\nexec "{python}" {" ".join(flags)} "$@"\n')
    path.chmod(0o755)
    return path


def _job_env() -> dict[str, str]:
    """The operator's shell: no PYSPARK_PYTHON, so only --conf can name the executors' Python."""
    return {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYTHONPATH")}


def _job(*args: str) -> subprocess.CompletedProcess[str]:
    return run_job(*args, env=_job_env())


def test_the_cluster_scores_as_local_mode_does(
    cluster: StandaloneCluster, cluster_input: Path, exported, spark, tmp_path: Path
) -> None:
    """The recipe of the README: --conf spark.pyspark.python and spark.pyspark.driver.python
    are honoured (each wrapper leaves its mark), the app runs on the cluster's worker, and
    the outputs reconcile and equal a local-mode run of the same input."""
    executor_marks = tmp_path / "executor.marks"
    executor_python = _wrapper(tmp_path / "executor-python", executor_marks, sys.executable)
    driver_python = _wrapper(tmp_path / "driver-python", tmp_path / "driver.marks", sys.executable)
    out, rej = tmp_path / "cluster-out", tmp_path / "cluster-rej"
    result = _job(
        "--input", str(cluster_input), "--output", str(out), "--rejects", str(rej),
        "--model", exported.onnx_tag, "--master", cluster.master_url,
        "--conf", f"spark.pyspark.python={executor_python}",
        "--conf", f"spark.pyspark.driver.python={driver_python}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:] + cluster.logs()[-4000:]
    summary = json.loads(last_line(result.stdout))
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (
        ROWS, ROWS - len(BAD_ROWS), len(BAD_ROWS),
    )  # fmt: skip
    assert summary["master"] == cluster.master_url and summary["tasks"] >= 1
    assert (tmp_path / "driver.marks").read_text().count("\n") == 1  # re-started once under it
    assert executor_marks.exists()  # the executors' Python workers ran it
    state = cluster.state()
    assert state["activeapps"] == [] and isinstance(state["completedapps"], list)
    assert APP_NAME in [app["name"] for app in state["completedapps"]]

    local = run(
        parse_args(
            ["--input", str(cluster_input), "--output", str(tmp_path / "local-out"),
             "--rejects", str(tmp_path / "local-rej"), "--model", exported.onnx_tag]
        ),
        spark,
    )  # fmt: skip
    assert {k: local[k] for k in ("rows_in", "scored", "rejected")} == {
        k: summary[k] for k in ("rows_in", "scored", "rejected")
    }
    for cluster_dir, local_dir in ((out, tmp_path / "local-out"), (rej, tmp_path / "local-rej")):
        assert "_SUCCESS" in {p.name for p in cluster_dir.iterdir()}
        on_cluster = pq.read_table(cluster_dir).sort_by("application_id")
        in_process = pq.read_table(local_dir).sort_by("application_id")
        assert on_cluster.schema == in_process.schema
        if "probability" in on_cluster.column_names:
            np.testing.assert_allclose(
                on_cluster.column("probability").to_numpy(),
                in_process.column("probability").to_numpy(),
                rtol=0,
                atol=1e-6,
            )
            on_cluster = on_cluster.drop_columns(["probability"])
            in_process = in_process.drop_columns(["probability"])
        assert on_cluster.equals(in_process)


def test_executors_that_cannot_import_the_project_stop_the_job_at_once(
    cluster: StandaloneCluster, cluster_input: Path, exported, tmp_path: Path
) -> None:
    """Executors whose Python lacks the project (here: no site-packages, `-S`) fail the
    probe: one error line with the worker's exception, no retries, no output folders."""
    bare = _wrapper(tmp_path / "bare-python", tmp_path / "bare.marks", sys.executable, "-S")
    out, rej = tmp_path / "out", tmp_path / "rej"
    started = time.monotonic()
    result = _job(
        "--input", str(cluster_input), "--output", str(out), "--rejects", str(rej),
        "--model", exported.onnx_tag, "--master", cluster.master_url,
        "--conf", f"spark.pyspark.python={bare}",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    last = last_line(result.stderr)
    assert last.startswith("jobs.score: error: executors cannot import the project: "), last
    assert last.count("ModuleNotFoundError: No module named 'jobs'") == 1, last
    assert "\tat " not in last and "failed 4 times" not in result.stderr
    assert not out.exists() and not rej.exists()
    assert result.stdout.strip() == ""
    print(f"failed after {elapsed:.1f} s (driver start-up included)")
