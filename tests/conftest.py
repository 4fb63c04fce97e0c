"""Shared fixtures. Every test session uses its own temporary BENTOML_HOME."""

import os
import shutil
import tempfile
from collections.abc import Iterator

# Must happen before bentoml is imported anywhere: BentoML reads BENTOML_HOME once.
_BENTOML_HOME = tempfile.mkdtemp(prefix="credit-risk-bentoml-home-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import pytest  # noqa: E402

from export.pipeline import ExportSummary, run_export  # noqa: E402


@pytest.fixture(scope="session")
def bentoml_home() -> Iterator[str]:
    yield _BENTOML_HOME
    shutil.rmtree(_BENTOML_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def exported(bentoml_home: str) -> ExportSummary:
    """One real export into the temporary model store, shared by the whole session."""
    return run_export()
