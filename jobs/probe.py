"""Before the real work: can the executors' Python import the project?

An executor whose Python lacks the project (the wrong `python3` on PATH, no shipped zip) fails
every task with `ModuleNotFoundError`, and Spark retries each task spark.task.maxFailures times
(4 on a cluster) before the job stops with a message that hides the cause. The probe runs one
tiny task per default-parallelism slot that imports what the scoring tasks import and returns
the error instead of raising it: the job stops at once, naming the Python and its error.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pyspark.sql import SparkSession

# What a scoring task imports (jobs.task pulls in jobs.engine, jobs.scoring, runners, features).
PROJECT_MODULES = ("jobs.task",)
ProbeRow = tuple[str, str, str]  # (sys.executable, host, last exception line or "")


class ExecutorSetupError(RuntimeError):
    """The executors cannot run the job's tasks; the message says which Python and why."""


@dataclass(frozen=True)
class ProbeReport:
    pythons: tuple[str, ...]  # the executors' interpreters (sys.executable), sorted
    tasks: int


def _importer(modules: tuple[str, ...]) -> Callable[[Iterable[int]], Iterator[ProbeRow]]:
    """A function pickled by value (it is local to this one), so that unpickling it on an
    executor imports nothing of the project: an import error comes back as data."""

    def probe(_: Iterable[int]) -> Iterator[ProbeRow]:
        import importlib
        import socket
        import sys
        import traceback

        error = ""
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as raised:  # any failure is the answer, not a task failure
            error = traceback.format_exception_only(raised)[-1].strip()
        yield sys.executable, socket.gethostname(), error

    return probe


def probe_executors(spark: SparkSession, modules: tuple[str, ...] = PROJECT_MODULES) -> ProbeReport:
    """Raises ExecutorSetupError when an executor's Python cannot import `modules`."""
    context = spark.sparkContext
    tasks = max(1, context.defaultParallelism)
    context.setJobDescription("credit-risk: can the executors import the project?")
    rows: list[ProbeRow] = (
        context.parallelize(range(tasks), tasks).mapPartitions(_importer(modules)).collect()
    )
    context.setJobDescription(None)  # type: ignore[arg-type]  # PySpark accepts None: clears it
    for python, host, error in rows:
        if error:
            raise ExecutorSetupError(
                f"executors cannot import the project: {python} on {host}: {error}; give them "
                "a Python with the project installed (--conf spark.pyspark.python=PATH) or ship "
                "it (--conf spark.submit.pyFiles=project.zip)"
            )
    return ProbeReport(pythons=tuple(sorted({row[0] for row in rows})), tasks=len(rows))
