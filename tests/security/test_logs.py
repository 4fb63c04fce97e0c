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


def test_start_up_errors_are_logged_whole(scrubbed_logs: io.StringIO) -> None:
    """Issue 22: a start-up error says what is wrong; a request's error still does not."""
    from pydantic import ValidationError

    from runners.model_store import ModelLoadError
    from service.logs import start_up_errors
    from service.settings import ServiceSettings

    log = logging.getLogger("credit_risk.test")
    try:
        import opentelemetry_exporter_not_installed  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as error:
        log.error("worker failed", exc_info=error)
    log.error("model", exc_info=ModelLoadError("model 'credit_risk_onnx:nosuchtag' is not stored"))
    try:
        ServiceSettings(workers="many")  # type: ignore[arg-type]
    except ValidationError as error:
        log.error("settings", exc_info=error)
    try:
        with start_up_errors():
            raise RuntimeError("bentoml configuration: unknown key tracing.nope")
    except RuntimeError as error:
        log.error("app", exc_info=error)
    try:
        try:
            raise ValueError(f"income {MARKER}")  # a request's error, behind a start-up one
        except ValueError as inner:
            raise ModelLoadError("reloading the model failed") from inner
    except ModelLoadError as error:
        log.error("chain", exc_info=error)
    text = scrubbed_logs.getvalue()
    assert "No module named 'opentelemetry_exporter_not_installed'" in text, text
    assert "credit_risk_onnx:nosuchtag" in text
    assert "workers" in text and "valid integer" in text
    assert "unknown key tracing.nope" in text
    assert "reloading the model failed" in text
    assert MARKER not in text and f"builtins.ValueError: {WITHHELD}" in text
