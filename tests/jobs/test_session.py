"""How the job picks the executors' Python and the driver's addresses, and how it words a
Python worker's failure (messages as Spark 4 gives them)."""

import sys

from jobs.session import executor_python, job_settings
from jobs.spark_errors import python_exception_line, spark_message

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


class _JavaFailure(Exception):
    """What py4j's Py4JJavaError prints: the call, then the Java exception and its trace."""


TASK_FAILURE = (
    "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 "
    "failed 4 times, most recent failure: Lost task 0.3 in stage 0.0 (TID 3) (127.0.0.1 "
    'executor 0): java.io.IOException: Cannot run program "/nonexistent/python": error=2, No '
    "such file or directory\n\tat java.base/java.lang.ProcessBuilder.start(ProcessBuilder.java:"
    "1143)\nCaused by: java.io.IOException: error=2, No such file or directory\n\t... 20 more"
)


def test_a_failed_task_is_named_by_its_reason_and_deepest_cause() -> None:
    assert spark_message(_JavaFailure(TASK_FAILURE)) == (
        'java.io.IOException: Cannot run program "/nonexistent/python": error=2, No such file '
        "or directory (caused by java.io.IOException: error=2, No such file or directory)"
    )
    assert spark_message(_JavaFailure(WORKER_FAILURE)) == (
        "a Python worker failed: ModuleNotFoundError: No module named 'jobs'"
    )
    assert spark_message(_JavaFailure("[PATH_NOT_FOUND] Path does not exist: /x.")) == (
        "[PATH_NOT_FOUND] Path does not exist: /x."
    )


def test_the_executors_python_follows_sparks_order() -> None:
    conf = {"spark.pyspark.python": "/opt/py/bin/python"}
    env = {"PYSPARK_PYTHON": "/env/python"}
    for master in ("local[*]", "spark://10.0.0.5:7077", "yarn"):
        assert executor_python(conf, env, master) == "/opt/py/bin/python"
        assert executor_python({}, env, master) == "/env/python"
    assert executor_python({}, {}, "local[2]") == sys.executable
    assert executor_python({}, {}, "spark://10.0.0.5:7077") == sys.executable
    assert executor_python({}, {}, "k8s://https://api:6443") is None  # the image's python3


def test_a_loopback_master_gets_a_loopback_driver() -> None:
    for master in ("local[2]", "spark://127.0.0.1:7077", "spark://localhost:7077"):
        assert job_settings(master)["spark.driver.bindAddress"] == "127.0.0.1", master
    assert "spark.driver.bindAddress" not in job_settings("spark://10.0.0.5:7077")
    assert "spark.driver.host" not in job_settings("yarn")
