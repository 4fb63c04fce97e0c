"""Where the server touches BentoML internals: the version guard, the front door's place in
front of BentoML's app, the request-timeout middleware fix (no timer outlives its request,
timeouts still answer 504, an exception never waits for the timer)."""

import asyncio
import gc
import inspect
import logging
import os
import subprocess
import sys
import time
from typing import Any

import bentoml
import pytest
import uvicorn
import yaml
from circus.sockets import CircusSockets

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT
from service import bentoml_fixes
from service.bentoml_fixes import (
    TESTED_BENTOML,
    TESTED_UVICORN,
    TimerCancellingTimeoutMiddleware,
    private_hooks_usable,
)

BENTOML_ORIGINAL = TimerCancellingTimeoutMiddleware.__mro__[1]
REQUESTS = 300
BENTOFILES = ("bentofile.yaml", "bentofile.gpu.yaml")


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
    return len(
        [
            o
            for o in gc.get_objects()
            if isinstance(o, asyncio.TimerHandle)
            and not o.cancelled()
            and getattr(o._callback, "__name__", "") == "_set_timer_out"  # type: ignore[attr-defined]
        ]
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
    assert b"within 0.05 seconds" in sent[1]["body"]


def test_the_service_installs_the_fix(exported: ExportSummary) -> None:
    """In a fresh interpreter, as a worker would import it (the store has a model)."""
    check = (
        "import service.app; service.app.CreditRiskService; "
        "from bentoml._internal.server.http import traffic; "
        "print(traffic.TimeoutMiddleware.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split()[-1] == TimerCancellingTimeoutMiddleware.__name__


def test_an_exception_before_the_response_does_not_wait_for_the_timeout() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def main() -> float:
        started = time.perf_counter()
        with pytest.raises(RuntimeError, match="boom"):
            await _serve(TimerCancellingTimeoutMiddleware(broken, timeout=30.0), broken)
        return time.perf_counter() - started

    assert asyncio.run(main()) < 5  # not the 30 s timeout


def test_private_hooks_only_on_the_tested_versions(caplog: pytest.LogCaptureFixture) -> None:
    """Another BentoML or uvicorn: no hooks, one warning naming the versions (no refusal)."""
    assert bentoml.__version__ == TESTED_BENTOML and uvicorn.__version__ == TESTED_UVICORN
    with caplog.at_level(logging.WARNING, logger="credit_risk"):
        assert private_hooks_usable("auto", TESTED_BENTOML, TESTED_UVICORN)
        assert caplog.records == []
        assert not private_hooks_usable("auto", "1.4.41", TESTED_UVICORN)
        assert not private_hooks_usable("auto", TESTED_BENTOML, "0.55.0", warn=False)
        assert not private_hooks_usable("off", TESTED_BENTOML, TESTED_UVICORN)
    first, second = (record.getMessage() for record in caplog.records)
    assert "BentoML 1.4.41" in first and TESTED_BENTOML in first and TESTED_UVICORN in first
    assert "CREDIT_RISK_PRIVATE_HOOKS=off" in second


def test_without_private_hooks_the_door_is_a_bentoml_middleware(exported: ExportSummary) -> None:
    """In a fresh interpreter with CREDIT_RISK_PRIVATE_HOOKS=off: BentoML's `to_asgi` untouched,
    the front door among the app's middleware (BentoML's public `add_asgi_middleware`)."""
    check = (
        "import service.app as a; from _bentoml_sdk.service.factory import Service\n"
        "from service import bentoml_fixes as f; app = a.CreditRiskService.to_asgi()\n"
        "print(Service.to_asgi is f._ORIGINAL_TO_ASGI, type(app).__name__,"
        " [m.cls.__name__ for m in app.user_middleware])"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "CREDIT_RISK_PRIVATE_HOOKS": "off"},
    )
    untouched, app_type, middleware = result.stdout.strip().splitlines()[-1].split(" ", 2)
    assert (untouched, app_type) == ("True", "Starlette")
    assert "PublicDoor" in middleware


def test_uvicorn_builds_its_protocol_and_servers_as_the_accepter_does() -> None:
    """`extend_worker_startup` builds uvicorn's protocol as `Server.startup` does and relies on
    `servers` being made there and closed first in `shutdown` (fails if upstream changes it)."""
    startup = inspect.getsource(bentoml_fixes._ORIGINAL_STARTUP)
    for part in (
        "config.http_protocol_class(",
        "config=config,",
        "server_state=self.server_state,",
        "app_state=self.lifespan.state,",
        "_loop=_loop,",
        "await loop.create_server(create_protocol, sock=sock, ssl=config.ssl",
        "self.started = True",
    ):
        assert part in startup, part
    # A worker's own socket is bound but not listening when given to startup: create_server
    # listens on it with the configured backlog, after the app's start-up.
    assert "backlog=config.backlog)" in startup
    assert startup.index("await self.lifespan.startup()") < startup.index("loop.create_server(")
    shutdown = inspect.getsource(bentoml_fixes._ORIGINAL_SHUTDOWN)
    assert shutdown.index("server.close()") < shutdown.index("connection.shutdown()")


def test_uvicorn_loads_its_protocol_class_before_startup() -> None:
    """`extend_worker_startup` swaps `config.http_protocol_class` in `startup`, which works
    only if the config is loaded before (and the class read after) that point."""
    serve = inspect.getsource(uvicorn.Server._serve)
    assert serve.index("config.load()") < serve.index("await self.startup(sockets=sockets)")
    assert "self.http_protocol_class" in inspect.getsource(uvicorn.Config.load)


def test_bentoml_builds_the_api_socket_and_arbiter_as_listen_per_worker_expects() -> None:
    """`listen_per_worker` replaces `create_standalone_arbiter` in BentoML's circus module: it
    must still be imported from there when `serve_http` runs, and be given the API server's
    TCP socket, not yet bound, under `API_SERVER_NAME` (fails if upstream changes it)."""
    from _bentoml_impl.server import serving

    source = inspect.getsource(serving.serve_http)
    assert "from bentoml._internal.utils.circus import create_standalone_arbiter" in source
    assert "name=API_SERVER_NAME," in source
    assert (
        '"sockets": sockets,' in source and "create_standalone_arbiter(**arbiter_kwargs)" in source
    )
    assert "$(circus.sockets.{API_SERVER_NAME})" in source
    # The arbiter binds every socket without SO_REUSEPORT (circus's own reuseport sockets,
    # one per process, are left unbound there): ours is a plain one with the option set.
    assert "if not sock.so_reuseport:" in inspect.getsource(CircusSockets.bind_and_listen_all)


def test_pins_agree_with_the_tested_versions() -> None:
    """pyproject and both bentofiles pin what the patches were tested with, and the bentos lock
    every package."""
    pin = f"bentoml=={TESTED_BENTOML}"
    uvicorn_pin = f"uvicorn=={TESTED_UVICORN}"
    prometheus = f"prometheus-client=={prometheus_client_version()}"
    texts = {name: (PROJECT_ROOT / name).read_text() for name in ("pyproject.toml", *BENTOFILES)}
    for name, text in texts.items():
        assert pin in text and prometheus in text and uvicorn_pin in text, name
    for name in BENTOFILES:
        assert yaml.safe_load(texts[name])["python"]["lock_packages"] is True, name


def prometheus_client_version() -> str:
    from importlib.metadata import version

    return version("prometheus-client")


def test_the_worker_serves_what_to_asgi_returns() -> None:
    """The front door stands where BentoML's worker gets its app: `service.to_asgi()`, handed to
    uvicorn as is, which serves the listening socket it is given (fails if upstream changes how
    a worker builds its app or starts uvicorn)."""
    from _bentoml_impl.worker import service as worker

    source = inspect.getsource(worker.main.callback)  # click command -> its function
    assert "asgi_app = service.to_asgi(" in source
    assert "app=asgi_app," in source
    assert "uvicorn.Server(config).run(sockets=[socket])" in source


def test_the_service_app_is_behind_the_front_door(exported: ExportSummary) -> None:
    """In a fresh interpreter, as a worker would build it (the store has a model): the request-id
    layer, then the front door, then BentoML's app (the API-key layer only with a key file)."""
    check = (
        "import service.app as a; app = a.CreditRiskService.to_asgi(); layers = [app]\n"
        "while hasattr(layers[-1], 'app'): layers.append(layers[-1].app)\n"
        "print(*[type(layer).__name__ for layer in layers])"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split()[-3:] == ["RequestIdMiddleware", "FrontDoor", "Starlette"]
