"""Logs keep tracebacks but never an exception's message (which can quote applicant data)."""

import asyncio
import gc
import io
import logging
import threading

from service.logs import WITHHELD, scrubbed_traceback

MARKER = "123456.789"


def _parse_income(text: str) -> float:
    raise ValueError(f"could not convert string to float: {text!r}")


def _score(row: dict[str, str]) -> float:
    try:
        return _parse_income(row["income"])
    except ValueError as error:
        raise RuntimeError(f"row {row} failed") from error


def _failure() -> BaseException:
    try:
        try:
            _score({"income": MARKER + "x"})
        except RuntimeError:
            {}["income=" + MARKER]  # a second failure while handling the first
    except KeyError as error:
        return error
    raise AssertionError("no failure")


def test_a_scrubbed_traceback_keeps_frames_and_types_only() -> None:
    text = scrubbed_traceback(_failure())
    assert MARKER not in text
    for frame in ("_parse_income", "_score", "_failure"):
        assert frame in text, text
    assert text.count(WITHHELD) == 3
    order = [
        text.index(f"builtins.{kind}: {WITHHELD}")
        for kind in ("ValueError", "RuntimeError", "KeyError")
    ]
    assert order == sorted(order), text  # causes first, as Python prints them


def test_every_way_of_logging_an_exception_is_scrubbed(scrubbed_logs: io.StringIO) -> None:
    log = logging.getLogger("credit_risk.test")
    error = _failure()
    log.error("unexpected error serving %s", "/classify", exc_info=error)
    try:
        raise error
    except KeyError:
        log.exception("while scoring")
    log.warning("failed: %s (%r)", error, error)
    log.error(error)
    text = scrubbed_logs.getvalue()
    assert MARKER not in text, text
    assert "unexpected error serving /classify" in text and "while scoring" in text
    assert text.count(f"builtins.KeyError: {WITHHELD}") == 5, text


def test_uncaught_exceptions_of_threads_and_tasks_are_scrubbed(scrubbed_logs: io.StringIO) -> None:
    thread = threading.Thread(target=_parse_income, args=(MARKER,), name="bulk-worker")
    thread.start()
    thread.join()

    async def lost_task() -> None:
        from service.logs import install_loop_handler

        install_loop_handler(asyncio.get_running_loop())
        future = asyncio.get_running_loop().create_future()
        future.set_exception(ValueError(f"income {MARKER} out of range"))
        del future  # never retrieved: asyncio reports it when the future is collected
        gc.collect()

    asyncio.run(lost_task())
    text = scrubbed_logs.getvalue()
    assert "uncaught exception in thread bulk-worker" in text, text
    assert "Future exception was never retrieved" in text, text
    assert MARKER not in text, text
