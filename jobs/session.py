"""The Spark session of a job: embedded on this machine's loopback, or on a cluster's master.

In local mode (`local[*]`, the default) the driver and its executors are this process's JVM and
the Python workers it forks; they bind 127.0.0.1 only. A standalone master on a loopback
address (`spark://127.0.0.1:7077`) gets the same loopback driver settings; any other cluster
takes its networking from `--conf` (spark.driver.host, spark.driver.bindAddress).

The executors' Python: the job is started with `python -m jobs.score`, not spark-submit, and
PySpark then takes the executors' interpreter from PYSPARK_PYTHON alone, ignoring
`spark.pyspark.python`. `executor_python` applies Spark's documented order itself
(spark.pyspark.python, then PYSPARK_PYTHON); without either, local and standalone (spark://)
executors run this interpreter's path (PySpark's own fallback, `python3` on each executor's
PATH, is rarely the one with the project installed), and YARN and Kubernetes ones keep
PySpark's `python3` (their images name their own Python).
"""

import os
import sys
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from pyspark.sql import SparkSession

APP_NAME = "credit-risk-score"
# Rows per Arrow batch handed to a task's Python worker: large enough that per-batch costs
# (a Python call, the engine's per-call overhead) vanish, small enough to stay cache-friendly.
ARROW_BATCH_ROWS = 65_536
PYTHON_CONF = "spark.pyspark.python"
DRIVER_PYTHON_CONF = "spark.pyspark.driver.python"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def is_loopback_standalone(master: str) -> bool:
    """spark://127.0.0.1:PORT (or localhost): a cluster on this machine's loopback."""
    return master.startswith("spark://") and urlsplit(master).hostname in LOOPBACK_HOSTS


def loopback_settings() -> dict[str, str]:
    """Loopback only, no web UI: nothing of the driver is reachable from the network."""
    return {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
    }


def job_settings(master: str) -> dict[str, str]:
    settings = {
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
        "spark.ui.showConsoleProgress": "true",  # Spark's stage progress bar on stderr
        "spark.python.worker.reuse": "true",  # a worker keeps its engines across tasks
    }
    if is_local(master) or is_loopback_standalone(master):
        settings |= loopback_settings()
    if is_local(master):
        # Nothing is shuffled; keep any incidental shuffle at a partition per core.
        settings["spark.sql.shuffle.partitions"] = str(max(2, os.cpu_count() or 2))
    return settings


def executor_python(conf: Mapping[str, str], env: Mapping[str, str], master: str) -> str | None:
    """The interpreter executors run: --conf spark.pyspark.python, else PYSPARK_PYTHON, else
    this one for a local or standalone master; None: PySpark's default (`python3`)."""
    given = conf.get(PYTHON_CONF) or env.get("PYSPARK_PYTHON")
    if given:
        return given
    return sys.executable if is_local(master) or master.startswith("spark://") else None


def start_session(
    master: str,
    extra: Mapping[str, str] | None = None,
    env: MutableMapping[str, str] | None = None,
) -> SparkSession:
    """A session for `master`; `extra` (from --conf) overrides the job's own settings. Sets
    PYSPARK_PYTHON (in `env`, os.environ by default), which PySpark reads as the session
    starts."""
    env = os.environ if env is None else env
    conf = dict(extra or {})
    python = executor_python(conf, env, master)
    if python is not None:
        env["PYSPARK_PYTHON"] = python
    if is_local(master) or is_loopback_standalone(master):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(APP_NAME)
    for key, value in {**job_settings(master), **conf}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
