"""Where the server touches BentoML's and uvicorn's internals, observed by behaviour: the
version guard (hooks only on the tested versions, a warning otherwise), the front door's place
in front of BentoML's app or inside its chain, the worker start-up hooks on a real uvicorn. The arbiter and per-worker sockets are observed on
real servers (tests/service/test_listeners.py, tests/security/test_network_limits.py)."""

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import bentoml
import pytest
import uvicorn
import yaml

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT
from harness.rawhttp import is_closed, read_response
from service import bentoml_fixes
from service.bentoml_fixes import (
    TESTED_BENTOML,
    TESTED_UVICORN,
    private_hooks_usable,
)
from service.http.head_limits import HeadLimits

BENTOFILES = ("bentofile.yaml", "bentofile.gpu.yaml")


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
    the front door among the app's middleware (BentoML's public `add_asgi_middleware`), and
    uvicorn's unwritten access lines skipped as with the hooks."""
    check = (
        "import service.app as a; from _bentoml_sdk.service.factory import Service\n"
        "from service import bentoml_fixes as f; app = a.CreditRiskService.to_asgi()\n"
        "import logging; app.build_middleware_stack()\n"  # as its lifespan start-up does
        "print(Service.to_asgi is f._ORIGINAL_TO_ASGI, type(app).__name__,"
        " logging.getLogger('uvicorn.access').propagate,"
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
    last = result.stdout.strip().splitlines()[-1]
    untouched, app_type, access_propagates, middleware = last.split(" ", 3)
    assert (untouched, app_type) == ("True", "Starlette")
    assert "PublicDoor" in middleware
    # uvicorn's access lines are skipped here too (logging drops them: no handler, WARNING).
    assert access_propagates == "False"


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def test_uvicorn_runs_with_the_worker_startup_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """`extend_worker_startup` on a real uvicorn server, as a BentoML worker runs it (a listening
    socket handed to `Server.run`): a burst of connections all answered (taken by the greedy
    accepter, which builds uvicorn's protocol itself), an idle connection closed at the keep-alive
    timeout given (not uvicorn's 5 s), an oversized head refused by the guarded protocol, a
    clean stop. Fails if uvicorn changes how it builds its protocol or servers."""
    monkeypatch.setattr(uvicorn.Server, "startup", uvicorn.Server.startup)  # restored after
    monkeypatch.setattr(uvicorn.Server, "shutdown", uvicorn.Server.shutdown)
    bentoml_fixes.extend_worker_startup(0.002, True, HeadLimits(2048, 16, 5.0, 5.0), 0.5)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(256)
    port = listening.getsockname()[1]
    config = uvicorn.Config(_hello, loop="uvloop", http="httptools", lifespan="off",
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started:
                break
            time.sleep(0.025)
        assert server.started
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        for client in clients:
            client.sendall(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        answers = [read_response(client, timeout_s=10) for client in clients]
        assert [(a.status, a.body) if a else None for a in answers] == [(200, b"hello")] * 64
        assert is_closed(clients[0], 3.0)  # idle past the 0.5 s keep-alive
        with socket.create_connection(("127.0.0.1", port)) as big:
            big.sendall(b"GET / HTTP/1.1\r\nhost: t\r\nx-big: " + b"x" * 4096 + b"\r\n\r\n")
            refused = read_response(big, timeout_s=10)
        assert refused is not None and refused.status == 431
        for client in clients:
            client.close()
    finally:
        server.should_exit = True
        thread.join(20)
    assert not thread.is_alive()


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
