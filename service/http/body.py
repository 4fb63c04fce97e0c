"""Reading a request body under a size limit."""

from starlette.types import Receive

from service.errors import RequestError


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The whole body; 413 as soon as it is known to pass `limit` (from the declared
    Content-Length, or while a chunked body streams in)."""
    if declared is not None and declared > limit:
        raise RequestError(413, f"body has {declared} bytes, over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
