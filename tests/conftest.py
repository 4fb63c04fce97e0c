"""Shared fixtures. Every test session uses its own temporary BENTOML_HOME."""

import os
import shutil
import tempfile
from collections.abc import Iterator

# Must happen before bentoml is imported anywhere: BentoML reads BENTOML_HOME once.
_BENTOML_HOME = tempfile.mkdtemp(prefix="credit-risk-bentoml-home-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
# The suite starts some twenty short-lived Spark JVMs (sessions, job command lines, a standalone
# cluster's daemons and executors). HotSpot's optimising compiler (C2) spends more CPU on runs
# that short than it saves them: with C1 only, one job run over the test lake took 28% less
# machine CPU (14.7 against 20.4 s), and tests/jobs ran in 73-76 s against 94-97 s (-n 2,
# alternating runs). Spark behaves the same; jobs run outside the tests keep the JVM's
# defaults, and a caller's own settings win (setdefault).
_C1_ONLY = "-XX:TieredStopAtLevel=1"
os.environ.setdefault(
    "PYSPARK_SUBMIT_ARGS",  # read by PySpark when it launches a driver JVM
    f"--driver-java-options {_C1_ONLY} --conf spark.executor.extraJavaOptions={_C1_ONLY} "
    "pyspark-shell",
)
os.environ.setdefault("SPARK_DAEMON_JAVA_OPTS", _C1_ONLY)  # a standalone master and worker


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
def other_model(exported: ExportSummary) -> str:
    """A second real ONNX model (another split seed) in the same store: a challenger, or a
    champion to switch to."""
    return run_export(seed=4).onnx_tag


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


# The longest test files, longest first, as measured by `pytest -n 2 --dist loadfile
# --durations=0` (seconds of setup + call + teardown per file, 2026-12-05: 78 s for the Spark
# cluster down to 11 s). `make test` runs the files on two xdist workers, a file on one worker,
# handed out in collection order (`--no-loadscope-reorder`): putting the longest first lets the
# many short files fill the end evenly (longest-processing-time-first), instead of one worker
# starting a Spark cluster while the other has nothing left. A file missing here only runs later.
LONGEST_FIRST = (
    "tests/jobs/test_cluster.py",
    "tests/deploy/test_rolling_update.py",
    "tests/reliability/test_overload.py",
    "tests/records/test_server.py",
    "tests/reliability/test_fuzz.py",
    "tests/reliability/test_load_and_lifecycle.py",
    "tests/service/test_champion_challenger.py",
    "tests/reliability/test_broken_models.py",
    "tests/jobs/test_score.py",
    "tests/service/test_door_limits.py",
    "tests/jobs/test_cli.py",
    "tests/service/test_bento_build.py",
    "tests/service/test_modes.py",
    "tests/deploy/test_read_only_root.py",
    "tests/deploy/test_dashboard.py",
    "tests/service/test_load_gauges.py",
    "tests/deploy/test_manifests.py",
    "tests/security/test_network_limits.py",
    "tests/reliability/test_disconnect.py",
    "tests/records/test_postgres.py",
    "tests/jobs/test_client_parity.py",
    "tests/security/test_startup.py",
    "tests/service/test_batching_under_load.py",
    "tests/test_readme.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Runs the files of LONGEST_FIRST first, in its order; the order within a file and of the
    other files is kept (a stable sort)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath

    def file_rank(item: pytest.Item) -> int:
        relative = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        return rank.get(relative, len(rank))

    items.sort(key=file_rank)
