"""CREDIT_RISK_LOG_FORMAT=json: one JSON object a line, the request id as a field, and the
personal-data rules of service/logs.py unchanged (exception messages withheld)."""

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from export.pipeline import ExportSummary
from harness.process import served
from service import log_format, logs
from service.log_format import JsonLines
from service.logs import REQUEST_ID, WITHHELD

MARKER = "applicant-income-7777777"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """service.logs and JSON lines installed in this process (undone afterwards): what the
    credit_risk loggers write."""
    saved = (logging.getLogRecordFactory(), threading.excepthook, sys.excepthook)
    logs.install()
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    logger = logging.getLogger("credit_risk.test_log_format")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]
    formatters = [(h, h.formatter) for h in handlers]
    log_format.install("json")  # formats every handler configured now, this one included
    try:
        yield text
    finally:
        for other, formatter in formatters:
            other.setFormatter(formatter)
        logger.removeHandler(handler)
        logs.request_id_in_message(True)
        logging.captureWarnings(False)
        logging.setLogRecordFactory(saved[0])
        threading.excepthook, sys.excepthook = saved[1], saved[2]


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_request_line_carries_its_id_as_a_field(json_logs: io.StringIO) -> None:
    assert isinstance(
        logging.getLogger("credit_risk.test_log_format").handlers[0].formatter, JsonLines
    )
    token = REQUEST_ID.set("req-42")
    try:
        logging.getLogger("credit_risk.test_log_format").warning("scored %d rows", 3)
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("credit_risk.test_log_format").info("no request here")
    first, second = _lines(json_logs.getvalue())
    assert first["message"] == "scored 3 rows"  # no " [request_id=...]" suffix
    assert first["request_id"] == "req-42"
    assert first["level"] == "WARNING" and first["logger"] == "credit_risk.test_log_format"
    assert str(first["time"]).endswith("Z")
    assert "request_id" not in second and second["level"] == "INFO"


def test_exceptions_keep_their_traceback_not_their_message(json_logs: io.StringIO) -> None:
    logger = logging.getLogger("credit_risk.test_log_format")
    try:
        raise ValueError(f"idx={MARKER} must be within the inferred shape")
    except ValueError as error:
        logger.exception("model call failed")
        logger.error("with the error as an argument: %s", error)
    text = json_logs.getvalue()
    assert MARKER not in text
    failed, argument = _lines(text)
    assert failed["message"] == "model call failed"
    assert "Traceback (most recent call last)" in str(failed["exception"])
    assert f"ValueError: {WITHHELD}" in str(failed["exception"])
    assert WITHHELD in str(argument["message"])


@pytest.mark.slow
def test_a_real_server_writes_only_json_lines(exported: ExportSummary, tmp_path: Path) -> None:
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_LOG_FORMAT": "json",
        "CREDIT_RISK_ACCESS_LOG": "true",
    }
    log = tmp_path / "serve.log"
    with served(env, log_path=log) as server:
        answer = httpx.get(f"{server.url}/no-such-page", headers={"x-request-id": "json-1"})
        assert answer.status_code == 404
    lines = _lines(log.read_text())  # every line parses: raises otherwise
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert "[request_id=" not in str(line["message"])
    (access,) = [line for line in lines if line.get("request_id") == "json-1"]
    assert access["logger"] == "bentoml.access" and "/no-such-page" in str(access["message"])
    assert len(str(access["trace_id"])) == 32  # BentoML's tracing span of that request
