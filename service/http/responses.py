"""The one error handler: every failure on a front-door route becomes (status, headers, JSON).

MLServer's discipline: one error type (`RequestError`), one mapping to a response, so a bad
request gets the same answer on every route.
"""

import logging

from runners.batcher import OverloadedError
from service.errors import RequestError
from service.http.asgi import JSON_HEADERS, Header

logger = logging.getLogger("credit_risk")

CLIENT_CLOSED = 499  # nginx's "client closed request": shows in the request metrics
RETRY_STATUSES = (429, 503)


def as_request_error(error: Exception, path: str) -> RequestError:
    """The client-facing error for anything raised while serving `path`."""
    if isinstance(error, RequestError):
        return error
    if isinstance(error, OverloadedError):
        return RequestError(503, str(error))
    # A bug, never the client's fault: log it with its traceback, answer 500, keep serving.
    logger.error("unexpected error serving %s", path, exc_info=error)
    return RequestError(500, "internal error")


def error_headers(error: RequestError, retry_after_s: int, allow: str) -> list[Header]:
    headers = list(JSON_HEADERS)
    if error.status in RETRY_STATUSES:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    elif error.status == 405:
        headers.append((b"allow", allow.encode()))
    return headers
