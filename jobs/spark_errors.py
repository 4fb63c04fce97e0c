"""Spark's errors in one line: the cause an operator can act on, without a stack trace.

A failed task reaches the driver as a Java exception whose message holds the task's reason and,
for a Python worker, its whole traceback; the line that names the cause is the traceback's last
one, or the task's reason, not the first line of the message.
"""

import re

PYTHON_TRACEBACK = "Traceback (most recent call last):"
# Spark's "Job aborted" line: `... most recent failure: Lost task 0.3 in stage 1.0 (TID 7)
# (10.0.0.5 executor 2): java.io.IOException: Cannot run program "python3": error=2, ...`
_TASK_FAILURE = re.compile(r"most recent failure: Lost task .*?\(TID \d+\) \([^)]*\): (.+)$")


def spark_message(error: BaseException) -> str:
    """The cause in one line, without a stack trace: a Python worker's exception line (the last
    one of its traceback); else the failed task's reason (`Cannot run program ...`) with the
    deepest `Caused by:`; else the first line Spark gives."""
    getter = getattr(error, "getMessage", None)
    text = getter() if callable(getter) else str(error)
    lines = [line.rstrip() for line in str(text).splitlines() if line.strip()]
    python = python_exception_line(lines)
    if python is not None:
        return f"a Python worker failed: {python}"[:500]
    causes = [line.strip() for line in lines if line.strip().startswith("Caused by:")]
    deepest = causes[-1].removeprefix("Caused by:").strip() if causes else None
    reasons = [found.group(1) for line in lines if (found := _TASK_FAILURE.search(line))]
    if reasons:
        chosen = reasons[-1].strip()
        if deepest and deepest not in chosen:
            chosen = f"{chosen} (caused by {deepest})"
    else:
        chosen = deepest or (lines or ["?"])[0].strip()
    return chosen[:500]


def python_exception_line(lines: list[str]) -> str | None:
    """In a Python traceback (the last one when exceptions were chained), the line after the
    indented frames: `ModuleNotFoundError: No module named 'jobs'`."""
    starts = [i for i, line in enumerate(lines) if line.endswith(PYTHON_TRACEBACK)]
    if not starts:
        return None
    for line in lines[starts[-1] + 1 :]:
        if not line[0].isspace():
            return line.strip().removesuffix("SQLSTATE: 38000").strip()
    return None
