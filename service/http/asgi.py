"""Small ASGI helpers shared by the front door's modules (Starlette's types, no framework)."""

from starlette.types import Scope, Send

Header = tuple[bytes, bytes]
JSON_HEADERS: list[Header] = [(b"content-type", b"application/json")]


def request_head(scope: Scope, default_type: str) -> tuple[str, int | None, str]:
    """(content type without parameters, lower case; declared content length; Accept), read
    in one pass over the headers (the hot path of every POST)."""
    content_type, length, accept = default_type, None, ""
    for key, value in scope["headers"]:
        if key == b"content-type":
            content_type = value.decode("latin-1").split(";")[0].strip().lower()
        elif key == b"content-length":
            length = int(value) if value.isdigit() else None
        elif key == b"accept":
            accept = value.decode("latin-1")
    return content_type, length, accept


async def respond(send: Send, status: int, body: bytes, headers: list[Header]) -> None:
    """A whole response in two messages, with its content-length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
