"""One exception hierarchy for everything the client can raise.

Server refusals carry the server's JSON error (`{"error": ..., "details": [...]}`). For bulk
scoring, the server names a bad cell by its row within one request (`income[1200]`); the client
rewrites those locations to the row in the whole input before raising, so the message points at
the row the caller gave.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from features.schema import FIELDS

# A row in a location as the server writes it: `income[1200]` in a bulk request (a column's
# cell), `[3].home` in a batch (an item's field).
_CELL = re.compile(r"\b(" + "|".join(FIELDS) + r")\[(\d+)\]")
_ITEM = re.compile(r"\[(\d+)\](?=\.\w)")


class CreditRiskError(Exception):
    """Base of every client error. `status` is the HTTP status (None when no answer came),
    `error` the server's summary (or the client's), `details` the server's list of
    `{"location", "message"}` items."""

    def __init__(
        self, error: str, *, status: int | None = None, details: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        self.status = status
        self.error = error
        self.details = [dict(item) for item in details]
        super().__init__(f"{status}: {error}" if status is not None else error)


class InputError(CreditRiskError, ValueError):
    """The input cannot be sent as given (a missing field column, an unreadable file); raised
    before anything is sent."""


class RequestRejectedError(CreditRiskError):
    """The server refused the request (any 4xx but 429): bad values, too large, wrong type."""


class ServerError(CreditRiskError):
    """The server failed (a 5xx it does not mark as retryable), or answered nonsense."""


class OverloadedError(CreditRiskError):
    """429 or 503 still answered after the retry policy's last attempt."""


class UnreachableError(CreditRiskError):
    """No answer at all (connection refused, reset, timed out) after the last attempt."""


def shift_rows(text: str, offset: int) -> str:
    """Every row in the locations in `text` moved by `offset`: with offset 100,000,
    `income[1200]` -> `income[101200]` and `[3].home` -> `[100003].home`."""
    if not offset:
        return text
    text = _CELL.sub(lambda cell: f"{cell[1]}[{int(cell[2]) + offset}]", text)
    return _ITEM.sub(lambda item: f"[{int(item[1]) + offset}]", text)


def _server_error(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    """The error summary and details of an answer, whatever its body (JSON or not)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details = body.get("details")
        items = details if isinstance(details, list) else []
        return body["error"], [item for item in items if isinstance(item, dict)]
    text = response.text.strip()[:500]
    return text or response.reason_phrase, []


def error_from_response(
    response: httpx.Response, *, row_offset: int = 0, overloaded: bool = False
) -> CreditRiskError:
    """The exception for a non-2xx answer; bulk row numbers shifted by `row_offset`."""
    error, details = _server_error(response)
    error = shift_rows(error, row_offset)
    for item in details:
        if isinstance(item.get("location"), str):
            item["location"] = shift_rows(item["location"], row_offset)
    kind: type[CreditRiskError]
    if overloaded:
        kind = OverloadedError
    elif 400 <= response.status_code < 500:
        kind = RequestRejectedError
    else:
        kind = ServerError
    return kind(error, status=response.status_code, details=details)
