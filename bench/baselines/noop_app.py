"""The HTTP limit of this machine: a raw ASGI app that reads the body and answers a fixed JSON.

Run under uvicorn + uvloop + httptools with as many workers as our server; nothing a real
server can do per request is cheaper, so its throughput is the ceiling we compare against.
"""

from typing import Any

ANSWER = b'{"status":"APPROVED","probability":0.1,"model":"noop"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: accept startup and shutdown
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
