"""A fix for BentoML 1.4's request-timeout middleware, applied when the service is imported.

BentoML's `TimeoutMiddleware` arms `loop.call_later(timeout, ...)` for every request and never
cancels it: each answered request leaves a timer (with its future and context, 5 GC-tracked
objects) alive for the whole request timeout. At 12,000 req/s and a 30 s timeout that is ~360,000
live timers: every young-generation GC pass found ~50,000 survivors (~9 ms each) and every
middle-generation pass walked ~1 M objects (270-830 ms with nothing to free), which was the whole
p99 tail under wrk at 64 connections (p99 195-830 ms, 1 worker; 11 ms with this fix).
The replacement behaves the same (504 after `timeout` seconds if the response has not started)
and cancels its timer as soon as the response starts or the request ends.
"""

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from bentoml._internal.server.http import traffic
from starlette.responses import JSONResponse

logger = logging.getLogger("credit_risk")

Scope = MutableMapping[str, Any]


class TimerCancellingTimeoutMiddleware(traffic.TimeoutMiddleware):
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, started)

        async def send_and_mark_started(message: Any) -> None:
            if not started.done():
                started.set_result(None)
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, send_and_mark_started))
        try:
            await started
        except TimeoutError:
            if handler.cancel():
                timed_out = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(timed_out, status_code=504)(scope, receive, send)
        else:
            timer.cancel()  # the response has started: the timeout no longer applies
            await handler
        finally:
            timer.cancel()
        return None


def apply() -> None:
    """Swap the middleware class BentoML's app builder looks up (it imports it by name from
    `traffic` each time it builds an app), if this BentoML still has the one this fixes."""
    original = traffic.TimeoutMiddleware
    if original is TimerCancellingTimeoutMiddleware:
        return
    if not hasattr(original, "_set_timer_out"):
        logger.warning("BentoML's TimeoutMiddleware changed; its timer fix is not applied")
        return
    traffic.TimeoutMiddleware = TimerCancellingTimeoutMiddleware  # type: ignore[misc]
