"""How the job picks the executors' Python and the driver's addresses, and how it words a
Python worker's failure (messages as Spark 4 gives them)."""

import sys

from jobs.score import python_exception_line
from jobs.session import executor_python, job_settings

# Spark's message for a task whose Python raised (pyspark.errors PythonException.getMessage()).
WORKER_FAILURE = (
    "[PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most recent "
    'call last):\n  File "/x/pyspark.zip/pyspark/worker.py", line 4327, in invoke_udf\n'
    '    run_process()\n    ^^^^^^^^^^^^^\n  File "<stdin>", line 8, in f\n'
    "ModuleNotFoundError: No module named 'jobs'\n SQLSTATE: 38000"
)
CHAINED = (
    "Job aborted due to stage failure: Task 0 in stage 1.0 failed 4 times, most recent "
    "failure: org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
    "  File \"a.py\", line 1, in f\nKeyError: 'x'\n\nDuring handling of the above exception, "
    "another exception occurred:\n\nTraceback (most recent call last):\n"
    '  File "a.py", line 3, in f\nValueError: boom\n\n\tat org.apache.spark.api.python.X(X.scala:1)'
)


def test_the_python_exception_line_is_found() -> None:
    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.splitlines() if line.strip()]

    assert python_exception_line(lines(WORKER_FAILURE)) == (
        "ModuleNotFoundError: No module named 'jobs'"
    )
    assert python_exception_line(lines(CHAINED)) == "ValueError: boom"
    assert python_exception_line(["org.apache.spark.SparkException: no python here"]) is None


def test_the_executors_python_follows_sparks_order() -> None:
    conf = {"spark.pyspark.python": "/opt/py/bin/python"}
    env = {"PYSPARK_PYTHON": "/env/python"}
    assert executor_python(conf, env) == "/opt/py/bin/python"
    assert executor_python({}, env) == "/env/python"
    assert executor_python({}, {}) == sys.executable


def test_a_loopback_master_gets_a_loopback_driver() -> None:
    for master in ("local[2]", "spark://127.0.0.1:7077", "spark://localhost:7077"):
        assert job_settings(master)["spark.driver.bindAddress"] == "127.0.0.1", master
    assert "spark.driver.bindAddress" not in job_settings("spark://10.0.0.5:7077")
    assert "spark.driver.host" not in job_settings("yarn")
