"""The Spark session of a job: embedded on this machine's loopback, or on a cluster's master.

In local mode (`local[*]`, the default) the driver and its executors are this process's JVM and
the Python workers it forks; they bind 127.0.0.1 only, and the workers run this interpreter
(PYSPARK_PYTHON), so they import the project's packages. On a cluster (spark://, yarn, k8s://)
networking and the executors' Python come from the cluster's configuration; `--conf` passes
anything else.
"""

import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

APP_NAME = "credit-risk-score"
# Rows per Arrow batch handed to a task's Python worker: large enough that per-batch costs
# (a Python call, the engine's per-call overhead) vanish, small enough to stay cache-friendly.
ARROW_BATCH_ROWS = 65_536


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def local_settings() -> dict[str, str]:
    """Loopback only, no web UI: nothing of an embedded run is reachable from the network."""
    return {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        # Nothing is shuffled; keep any incidental shuffle at a partition per core.
        "spark.sql.shuffle.partitions": str(max(2, os.cpu_count() or 2)),
    }


def job_settings(master: str) -> dict[str, str]:
    settings = {
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
        "spark.ui.showConsoleProgress": "true",  # Spark's stage progress bar on stderr
        "spark.python.worker.reuse": "true",  # a worker keeps its engines across tasks
    }
    if is_local(master):
        settings |= local_settings()
    return settings


def start_session(master: str, extra: Mapping[str, str] | None = None) -> SparkSession:
    """A session for `master`; `extra` (from --conf) overrides the job's own settings."""
    if is_local(master):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(APP_NAME)
    for key, value in {**job_settings(master), **(extra or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
