"""Small ASGI helpers shared by the front door's modules (Starlette's types, no framework)."""

from starlette.types import Scope, Send

Header = tuple[bytes, bytes]
JSON_HEADERS: list[Header] = [(b"content-type", b"application/json")]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (`name` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def media_type(scope: Scope, default: str) -> str:
    """The request's content type without parameters, lower case."""
    return (header(scope, b"content-type") or default).split(";")[0].strip().lower()


def content_length(scope: Scope) -> int | None:
    declared = header(scope, b"content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def respond(send: Send, status: int, body: bytes, headers: list[Header]) -> None:
    """A whole response in two messages, with its content-length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
