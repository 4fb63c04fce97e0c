"""Every log line of a worker names its request and carries no applicant data.

`install()` puts one record factory in front of Python's logging, so it applies to every logger
(ours, BentoML's, uvicorn's, asyncio's) and every handler, whichever configures them:

- a record made while a request is being served ends with ` [request_id=...]` (the id the
  request-id middleware set in `REQUEST_ID` for that request's task);
- exceptions are logged without their messages: a traceback keeps its frames and exception
  types, but an exception's text can quote input (ONNX Runtime's "idx=123456 must be within
  ...", a parser's offending cell), so it is replaced by `WITHHELD`, for the exception, its
  causes and contexts, and for exceptions passed as a message or an argument. Start-up errors
  are the exception: their messages never quote a request and say what is wrong, so they are
  logged whole (`quotes_no_request`: import errors, a bad model or device, an unusable key
  file, an invalid setting, and whatever BentoML raises while building a worker's app);
- a URL's query string is replaced by `?<redacted>` in the message and its string arguments
  (clients put keys and values in query strings: uvicorn's access line quotes the path with
  its query, even for a 401).

Values reach clients only in 4xx bodies (the offending value of the one bad field); never a log.
"""

import asyncio
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from types import TracebackType
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("credit_risk_request_id", default=None)
WITHHELD = "<message withheld: it may quote request data>"
REDACTED_QUERY = "?<redacted>"
# A path (or URL) followed by a query string: "/classify?api_key=..." -> "/classify?<redacted>".
QUERY = re.compile(r"(/[^\s?#\"']*)\?[^\s\"'#]+")

# Errors raised before a request can exist, naming a module, a model, a file or a setting:
# their messages are logged whole. By qualified name, so this module imports none of them.
START_UP_ERRORS = frozenset(
    {
        "runners.model_store.ModelLoadError",
        "runners.device.DeviceUnavailableError",
        "service.http.api_keys.KeyFileError",
        "service.bentoml_fixes.UntestedVersionError",
    }
)
SETTINGS_MODEL = "ServiceSettings"  # a pydantic ValidationError of the settings: configuration
_START_UP_MARK = "_credit_risk_start_up_error"

logger = logging.getLogger("credit_risk")


def quotes_no_request(error: BaseException) -> bool:
    """True for an error whose message cannot quote request data (a start-up error)."""
    if isinstance(error, ImportError) or getattr(error, _START_UP_MARK, False):
        return True
    kind = type(error)
    if any(f"{k.__module__}.{k.__qualname__}" in START_UP_ERRORS for k in kind.__mro__):
        return True
    return kind.__name__ == "ValidationError" and getattr(error, "title", "") == SETTINGS_MODEL


@contextmanager
def start_up_errors() -> Iterator[None]:
    """`with start_up_errors(): ...` marks whatever the block raises as a start-up error
    (logged whole): for code that builds a worker before any request exists."""
    try:
        yield
    except BaseException as error:
        with suppress(AttributeError):  # an exception type with __slots__ stays withheld
            setattr(error, _START_UP_MARK, True)
        raise


def withheld(error: BaseException) -> str:
    """An exception as a log may show it: its type, and its message only when that cannot
    quote request data (`quotes_no_request`)."""
    kind = type(error)
    if quotes_no_request(error):
        return f"{kind.__module__}.{kind.__qualname__}: {error}"
    return f"{kind.__module__}.{kind.__qualname__}: {WITHHELD}"


def scrubbed_traceback(error: BaseException) -> str:
    """Python's traceback of `error` (causes and contexts first), every message withheld."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    parts: list[str] = []
    for index, link in enumerate(reversed(chain)):
        if index:
            parts.append("\nwhich led to:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(link.__traceback__)))
        parts.append(withheld(link))
    return "".join(parts)


def redact_queries(text: str) -> str:
    """`text` with every URL query string replaced by `?<redacted>`."""
    return QUERY.sub(r"\1" + REDACTED_QUERY, text) if "?" in text else text


def _scrub(record: logging.LogRecord) -> None:
    if record.exc_info:
        error = record.exc_info[1]
        record.exc_text = scrubbed_traceback(error) if error is not None else None
        record.exc_info = None
    if isinstance(record.msg, BaseException):
        record.msg = withheld(record.msg)
    if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
        record.args = tuple(withheld(a) if isinstance(a, BaseException) else a for a in record.args)
    if isinstance(record.msg, str) and "?" in record.msg:
        record.msg = redact_queries(record.msg)
    if isinstance(record.args, tuple) and any(isinstance(a, str) and "?" in a for a in record.args):
        record.args = tuple(redact_queries(a) if isinstance(a, str) else a for a in record.args)
    request_id = REQUEST_ID.get()
    if request_id is not None:
        setattr(record, _REQUEST_ID_FIELD, request_id)
        if _request_id_in_message:
            # The id is validated to [A-Za-z0-9._:-], so it cannot disturb `msg % args`.
            record.msg = f"{record.msg} [request_id={request_id}]"


_REQUEST_ID_FIELD = "credit_risk_request_id"
_request_id_in_message = True  # False: a formatter writes it as a field (service/log_format.py)


def request_id_in_message(on: bool) -> None:
    """Whether records end with ` [request_id=...]` (text logs) or only carry it."""
    global _request_id_in_message
    _request_id_in_message = on


def request_id_of(record: logging.LogRecord) -> str | None:
    """The id of the request a record was made for, if any."""
    found: str | None = getattr(record, _REQUEST_ID_FIELD, None)
    return found


def install() -> None:
    """Scrub every record this process makes from now on (idempotent), and send uncaught
    exceptions of threads and of the main thread through logging, scrubbed."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "scrubs_credit_risk_records", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    factory.scrubs_credit_risk_records = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    threading.excepthook = _thread_exception
    sys.excepthook = _uncaught_exception


def skip_unwritten_access_lines() -> None:
    """uvicorn's HTTP protocol builds an access line (client address, path, status) for every
    response whenever its `uvicorn.access` logger has a handler anywhere up the tree (it asks
    `hasHandlers()`, not the level), and the logger then drops it: BentoML leaves that logger
    at WARNING; operators' access log is BentoML's (`CREDIT_RISK_ACCESS_LOG`). Unless that
    logger is enabled for INFO, it stops propagating, so uvicorn skips the work (~2% of a
    worker at 64 connections). Call before connections are made (each protocol asks once)."""
    access = logging.getLogger("uvicorn.access")
    if not access.handlers and not access.isEnabledFor(logging.INFO):
        access.propagate = False


def install_loop_handler(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio's default handler writes the failed task or future's repr, which quotes its
    exception's message ("exception=ValueError('...')"); this one logs the context's message
    and the exception, scrubbed."""
    loop.set_exception_handler(_loop_exception)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    error = context.get("exception")
    logger.error("%s", context.get("message", "unhandled error in the event loop"), exc_info=error)


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        name = args.thread.name if args.thread is not None else "?"
        logger.error("uncaught exception in thread %s", name, exc_info=args.exc_value)


def _uncaught_exception(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logger.critical("uncaught exception", exc_info=error)
