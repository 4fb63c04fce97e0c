"""The one error type of the request path and its one JSON shape.

Anything the data plane or the HTTP layer refuses is a `RequestError`; the front door turns it,
and every other failure, into a response in `service/http/responses.py`, so every route answers
errors alike: `{"error": summary naming the first bad field, "details": [{location, message}]}`.
"""

from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

MAX_DETAILS = 20


@dataclass
class RequestError(Exception):
    """A request the server will not answer with a result: `status` is the HTTP status."""

    status: int
    message: str
    details: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message, "details": self.details})


def overloaded(message: str) -> RequestError:
    """503: the client should retry later (the HTTP layer adds Retry-After)."""
    return RequestError(503, message)


def format_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """("age",) -> "age"; (3, "age") -> "[3].age"; ("age", 523) -> "age[523]"."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def from_validation_error(
    error: ValidationError, prefix: str = "", schema: str = "the applicant schema"
) -> RequestError:
    """422 for bad values, 400 when the body is not JSON at all."""
    details = []
    status = 422
    for item in error.errors(include_url=False, include_input=False)[:MAX_DETAILS]:
        if item["type"] == "json_invalid":
            status = 400
        location = format_location(tuple(item["loc"]), prefix)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"Unknown field (not part of {schema})"
        details.append({"location": location, "message": message})
    first = details[0]
    count = error.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return RequestError(status, f"{first['location']}: {first['message']}{more}", details)


def too_large(what: str, size: int, limit: int, unit: str) -> RequestError:
    return RequestError(413, f"{what} has {size} {unit}, over the limit of {limit} {unit}")
