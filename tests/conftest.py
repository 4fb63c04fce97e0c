"""Shared fixtures. Every test session uses its own temporary BENTOML_HOME."""

import os
import shutil
import tempfile
from collections.abc import Iterator

# Must happen before bentoml is imported anywhere: BentoML reads BENTOML_HOME once.
_BENTOML_HOME = tempfile.mkdtemp(prefix="credit-risk-bentoml-home-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


import numpy as np  # noqa: E402
import pytest  # noqa: E402

from export.dataset import applicant_records, load_applicants  # noqa: E402
from export.pipeline import ExportSummary, run_export  # noqa: E402
from harness.process import ServedProcess, served  # noqa: E402
from tests.reference import reference_probabilities  # noqa: E402


@pytest.fixture(scope="session")
def bentoml_home() -> Iterator[str]:
    yield _BENTOML_HOME
    shutil.rmtree(_BENTOML_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def exported(bentoml_home: str) -> ExportSummary:
    """One real export into the temporary model store, shared by the whole session."""
    return run_export()


@pytest.fixture(scope="session")
def records() -> list[dict[str, object]]:
    return applicant_records(load_applicants())


@pytest.fixture(scope="session")
def expected_probability(exported: ExportSummary, records: list[dict[str, object]]) -> np.ndarray:
    """In-process ONNX Runtime on DictVectorizer features: independent of our encoder."""
    return reference_probabilities(exported, records)


@pytest.fixture(scope="session")
def server(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """The default configuration, production mode, 2 workers, pinned to the first export."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": "2"}
    with served(env, log_path=log, extra_args=("--production",)) as process:
        yield process
