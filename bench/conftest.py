"""In-process benchmark fixtures: a real export into a temporary model store.

    pytest bench/ --benchmark-only        # ~1 min; JSON to bench/results/inprocess.json

`--benchmark-json PATH` writes elsewhere; a part of the suite (-k, -m, one file) writes only
there. The normal `pytest` run collects tests/ only.
"""

import os
import shutil
import tempfile
from pathlib import Path

# A private model store; BentoML reads BENTOML_HOME at its first store access.
_BENTOML_HOME = tempfile.mkdtemp(prefix="credit-risk-bench-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import pytest  # noqa: E402
from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from export.dataset import applicant_records, load_applicants  # noqa: E402
from export.pipeline import ExportSummary, run_export  # noqa: E402

RESULTS = Path(__file__).parent / "results"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A run of the whole suite saves its JSON to bench/results/inprocess.json unless
    --benchmark-json says otherwise (set before pytest-benchmark's own configure reads the
    option); a part of it (-k, -m, a file) saves only where --benchmark-json says, so that it
    never replaces the whole suite's results, which bench/REPORT.md is made from."""
    if not config.getoption("benchmark_json", None):
        if not _whole_suite(config):
            return
        config.option.benchmark_json = RESULTS / "inprocess.json"
    Path(config.option.benchmark_json).parent.mkdir(parents=True, exist_ok=True)


def _whole_suite(config: pytest.Config) -> bool:
    if config.option.keyword or config.option.markexpr:
        return False
    here = Path(__file__).parent.resolve()
    return all(Path(arg).resolve() == here for arg in config.args)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_BENTOML_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def exported() -> ExportSummary:
    """One real export (train, convert, parity check, save) for the whole session."""
    return run_export()


@pytest.fixture(scope="session")
def records() -> list[dict[str, object]]:
    return applicant_records(load_applicants())


def rows_of(records: list[dict[str, object]], n: int) -> list[dict[str, object]]:
    """n applicants drawn cyclically from the dataset."""
    return [records[i % len(records)] for i in range(n)]


def record_rate(benchmark: BenchmarkFixture, rows: int) -> None:
    """Rows per second from the mean and the median call time, into the saved JSON."""
    stats = benchmark.stats.stats  # type: ignore[union-attr]
    benchmark.extra_info.update(
        rows=rows, rows_per_s=rows / stats.mean, rows_per_s_median=rows / stats.median
    )


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[object], output_json: dict[str, object]
) -> None:
    """Keep the statistics, not each round's raw timing: the results folder stays small."""
    for bench in output_json.get("benchmarks", []):  # type: ignore[attr-defined]
        bench["stats"].pop("data", None)
