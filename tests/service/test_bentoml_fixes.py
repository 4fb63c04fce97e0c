"""The request-timeout middleware fix: no timer outlives its request, timeouts still answer 504."""

import asyncio
import gc
import subprocess
import sys
from typing import Any

from export.pipeline import ExportSummary
from service.bentoml_fixes import TimerCancellingTimeoutMiddleware

BENTOML_ORIGINAL = TimerCancellingTimeoutMiddleware.__mro__[1]
REQUESTS = 300


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/classify", "headers": []}


async def _answer_at_once(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _serve(middleware: Any, app: Any = _answer_at_once) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(_scope(), receive, send)
    return sent


def _live_timeout_timers() -> int:
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, asyncio.TimerHandle)
        and not o.cancelled()
        and getattr(o._callback, "__name__", "") == "_set_timer_out"  # type: ignore[attr-defined]
    )


def _timers_left_after_requests(middleware_class: type) -> int:
    async def main() -> int:
        middleware = middleware_class(_answer_at_once, timeout=30.0)
        for _ in range(REQUESTS):
            sent = await _serve(middleware)
            assert sent[0]["status"] == 200
        return _live_timeout_timers()

    return asyncio.run(main())


def test_bentoml_original_leaves_one_timer_per_request() -> None:
    """What the fix is for (if BentoML fixes it, this fails and the fix can go)."""
    assert _timers_left_after_requests(BENTOML_ORIGINAL) == REQUESTS


def test_fixed_middleware_leaves_no_timer() -> None:
    assert _timers_left_after_requests(TimerCancellingTimeoutMiddleware) == 0


def test_fixed_middleware_still_times_out_with_504() -> None:
    cancelled = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> list[dict[str, Any]]:
        sent = await _serve(TimerCancellingTimeoutMiddleware(slow, timeout=0.05), slow)
        await asyncio.wait_for(cancelled.wait(), 1)
        return sent

    sent = asyncio.run(main())
    assert sent[0]["status"] == 504
    assert b"0.05 seconds" in sent[1]["body"]


def test_the_service_installs_the_fix(exported: ExportSummary) -> None:
    """In a fresh interpreter, as a worker would import it (the store has a model)."""
    check = (
        "import service.app; from bentoml._internal.server.http import traffic; "
        "print(traffic.TimeoutMiddleware.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split()[-1] == TimerCancellingTimeoutMiddleware.__name__
