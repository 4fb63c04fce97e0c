"""In-process benchmark fixtures: a real export into a temporary model store.

Run: `pytest bench/ --benchmark-only` (results saved to bench/results/inprocess.json).
"""

import os
import tempfile
from pathlib import Path

os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="credit-risk-bench-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import numpy as np
import pytest

from export.dataset import applicant_records, load_applicants
from export.pipeline import ExportSummary, run_export

RESULTS = Path(__file__).parent / "results"


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("benchmark_json", None):
        RESULTS.mkdir(exist_ok=True)
        config.option.benchmark_json = str(RESULTS / "inprocess.json")


@pytest.fixture(scope="session")
def exported() -> ExportSummary:
    return run_export()


@pytest.fixture(scope="session")
def records() -> list[dict[str, object]]:
    return applicant_records(load_applicants())


def rows_of(records: list[dict[str, object]], n: int) -> list[dict[str, object]]:
    """n applicants drawn cyclically from the dataset."""
    return [records[i % len(records)] for i in range(n)]


def random_features(n: int, n_features: int) -> np.ndarray:
    return (np.random.default_rng(0).random((n, n_features)) * 100).astype(np.float32)
