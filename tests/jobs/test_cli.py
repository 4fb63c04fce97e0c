"""`python -m jobs.score` as an operator runs it: a JSON summary as the last stdout line, and
every failure (a corrupt file, no usable Java) as one clear line on stderr, exit status 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.process import PROJECT_ROOT
from tests.jobs.conftest import last_line, run_job

pytestmark = pytest.mark.slow
SUMMARY_KEYS = {"rows_in", "scored", "rejected", "seconds", "rows_per_s", "model", "master"}


def job(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_job(*args, env={**os.environ, **(env or {})})


def test_the_last_stdout_line_is_the_json_summary(lake, exported, tmp_path: Path) -> None:
    out, rej = tmp_path / "out", tmp_path / "rej"
    result = job(
        "--input", str(lake["parquet"]), "--output", str(out), "--rejects", str(rej),
        "--model", exported.onnx_tag, "--master", "local[2]",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(last_line(result.stdout))
    assert set(summary) >= SUMMARY_KEYS
    assert summary["rows_in"] == summary["scored"] + summary["rejected"] == 3_000
    assert (summary["model"], summary["master"]) == (exported.onnx_tag, "local[2]")
    assert "jobs.score: scoring" in result.stderr  # progress is told on stderr while it runs


def test_a_corrupt_input_file_is_one_clear_error_line(lake, exported, tmp_path: Path) -> None:
    source = tmp_path / "lake"
    source.mkdir()
    (source / "good.parquet").write_bytes((lake["parquet"] / "part-0.parquet").read_bytes())
    (source / "broken.parquet").write_bytes(b"PAR1" + b"\x00 truncated upload" * 50)
    out, rej = tmp_path / "out", tmp_path / "rej"
    result = job(
        "--input", str(source), "--output", str(out), "--rejects", str(rej),
        "--model", exported.onnx_tag, "--master", "local[2]",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    last = last_line(result.stderr)
    assert last.startswith(f"jobs.score: error: cannot score {source}: "), last
    assert "broken.parquet" in last and "not a Parquet file" in last, last
    assert "\tat " not in last and len(last) < 600
    assert result.stdout.strip() == ""  # no summary for a failed run
    assert "jobs.score: Spark" not in result.stderr  # found before Spark started
    assert not out.exists() and not rej.exists()  # no folder left behind


def test_a_missing_input_is_refused_before_spark_starts(exported, tmp_path: Path) -> None:
    out, rej = tmp_path / "out", tmp_path / "rej"
    missing = tmp_path / "no-such-lake"
    result = job("--input", str(missing), "--output", str(out), "--rejects", str(rej),
                 "--model", exported.onnx_tag)  # fmt: skip
    assert result.returncode == 1
    assert last_line(result.stderr) == f"jobs.score: error: input {missing} does not exist"
    assert "jobs.score: Spark" not in result.stderr and "Java" not in result.stderr
    assert not out.exists() and not rej.exists()


def test_no_usable_java_is_a_clear_failure(lake, tmp_path: Path) -> None:
    """JAVA_HOME pointing at a Java 11, then no Java at all: the job stops before Spark."""
    java_home = tmp_path / "jdk-11"
    (java_home / "bin").mkdir(parents=True)
    java = java_home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    args = (
        "--input",
        str(lake["parquet"]),
        "--output",
        str(tmp_path / "o"),
        "--rejects",
        str(tmp_path / "r"),
    )
    old = job(*args, env={"JAVA_HOME": str(java_home)})
    assert old.returncode == 1
    assert last_line(old.stderr) == (
        f"jobs.score: error: {java} is Java 11; Spark needs Java 17+: install Java 17 or newer "
        "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path / "empty-bin")
    none = subprocess.run(
        [sys.executable, "-m", "jobs.score", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert none.returncode == 1
    assert last_line(none.stderr).startswith(
        "jobs.score: error: no Java found in PATH (JAVA_HOME is not set); Spark needs Java 17+"
    ), none.stderr[-2000:]
