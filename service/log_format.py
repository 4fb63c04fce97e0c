"""`CREDIT_RISK_LOG_FORMAT=json`: every log line of the server one JSON object.

    {"time": "2026-12-04T20:51:02.117Z", "level": "ERROR", "logger": "credit_risk",
     "message": "unexpected error serving /classify", "request_id": "...", "trace_id": "...",
     "span_id": "...", "exception": "Traceback (most recent call last): ..."}

`time` is UTC with milliseconds; `request_id` is the id of the request being served (the one
in its `X-Request-ID` answer header), as a field instead of the text form's ` [request_id=...]`
suffix; `trace_id` and `span_id` are OpenTelemetry's current span (32 and 16 hex digits), when
BentoML's tracing has one; `exception` is the traceback. Absent fields are left out.

The personal-data rules are those of `service.logs`, unchanged: its record factory has scrubbed
a record before any handler formats it (exception messages withheld), and this formatter writes
only the formatted message and the scrubbed traceback, never the raw exception.

`install` switches every handler configured at that moment (BentoML's, on the root and on its
named loggers); call it after BentoML has configured logging (true when the service module is
imported, in the `bentoml serve` process and in each worker).
"""

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace

from service import logs

LogFormat = Literal["text", "json"]


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = logs.request_id_of(record)
        if request_id is not None:
            entry["request_id"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if record.exc_info and record.exc_info[1] is not None:
            # A record made before service.logs was installed: scrub it here.
            entry["exception"] = logs.scrubbed_traceback(record.exc_info[1])
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(log_format: LogFormat) -> None:
    """Write every log line as `log_format` from now on ("text" leaves logging as it is)."""
    if log_format != "json":
        return
    logs.request_id_in_message(False)
    logging.captureWarnings(True)  # Python's warnings become JSON lines too, not bare stderr
    formatter = JsonLines()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]  # fmt: skip
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
