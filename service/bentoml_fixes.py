"""Every place this project touches BentoML's (and uvicorn's) internals, for exactly one
version of each.

- `private_hooks_usable`: what follows depends on private code, so it is used only on
  `TESTED_BENTOML` and `TESTED_UVICORN` (the versions pinned in pyproject.toml and locked in the
  bentofiles); on any other version (or with CREDIT_RISK_PRIVATE_HOOKS=off) the server starts
  without it, the front door behind BentoML's public `add_asgi_middleware` (`public_door`),
  with one warning naming the versions.
- `serve_behind`: BentoML builds each API worker's ASGI app with `Service.to_asgi()` and hands it
  to uvicorn; the front door (service/http/) is put in front of that app there, so it stands
  outside BentoML's middleware chain. Starlette's trailing-slash redirect is turned off on that
  app (`router.redirect_slashes`): it built its `Location` from the request's Host header.
- `TimerCancellingTimeoutMiddleware`: BentoML's request-timeout middleware arms a timer per
  request and never cancels it (each answered request left a timer, its future and context
  alive for the whole 30 s timeout, which GC passes then walked); the replacement cancels it as
  soon as the response starts or the request ends, and still answers 504 after `timeout`.
- `listen_per_worker`: BentoML's `serve_http` builds the API server's socket and hands it to
  `create_standalone_arbiter` (imported from `bentoml._internal.utils.circus` when it runs),
  which binds it later; the replacement gives that socket SO_REUSEPORT first
  (service/http/listeners.py), so each worker can add a listening socket of its own. It also
  builds the arbiter with its control and pub/sub endpoints on `ipc://` sockets in a fresh
  0700 folder: BentoML puts them on TCP ports of 127.0.0.1 without authentication, where any
  process of the host, or any container of the pod, could add a watcher running a command.
- `extend_worker_startup`: BentoML runs each worker as
  `uvicorn.Server(config).run(sockets=[...])`; uvicorn's startup is given the worker's own
  listening socket beside the shared one when the shared one allows it and a protocol class
  whose transport writes each response at once (`config.http_protocol_class`, a subclass of
  uvicorn's own), and after startup has made its servers, a `GreedyAccept`
  (service/http/accept.py) per listening socket takes the connections uvloop leaves waiting,
  into the same protocol uvicorn builds
  (`config.http_protocol_class(config=, server_state=, app_state=, _loop=)`, copied from
  uvicorn's `Server.startup`, version pinned in pyproject.toml), and stops before uvicorn's
  shutdown stops accepting. The protocol class is also `guarded` (service/http/head_limits.py):
  bounded heads, head and body timeouts, the parser's 400 in the one error shape.

tests/service/test_bentoml_fixes.py fails when upstream changes any of these internals.
"""

import asyncio
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable, MutableMapping
from typing import Any

import bentoml
import uvicorn
from _bentoml_impl.server.serving import API_SERVER_NAME
from _bentoml_sdk.service.factory import Service
from bentoml._internal.server.http import traffic
from bentoml._internal.utils import circus as bentoml_circus

from service import logs
from service.http import listeners
from service.http.accept import GreedyAccept
from service.http.asgi import JSON_HEADERS, respond
from service.http.head_limits import Guard, HeadLimits, guarded
from service.http.request_id import RequestIds
from service.http.timeout import timed_out
from service.http.writes import coalescing

logger = logging.getLogger("credit_risk")

TESTED_BENTOML = "1.4.40"
TESTED_UVICORN = "0.54.0"

Scope = MutableMapping[str, Any]
AppWrapper = Callable[[Any], Any]


def private_hooks_usable(
    setting: str,
    version: str = bentoml.__version__,
    uvicorn_version: str = uvicorn.__version__,
    *,
    warn: bool = True,
) -> bool:
    """Whether this process extends BentoML's and uvicorn's internals (the hooks below): only on
    the tested versions, and unless `setting` (CREDIT_RISK_PRIVATE_HOOKS) is "off". Otherwise
    the server starts without them, the front door behind BentoML's public middleware API
    (`public_door`), and, when `warn` (the `bentoml serve` process), says so in one warning
    naming the versions."""
    tested = version == TESTED_BENTOML and uvicorn_version == TESTED_UVICORN
    if tested and setting != "off":
        return True
    if warn:
        why = (
            "CREDIT_RISK_PRIVATE_HOOKS=off"
            if tested
            else f"BentoML {version} and uvicorn {uvicorn_version} are installed; the private "
            f"hooks were tested only with BentoML {TESTED_BENTOML} and uvicorn {TESTED_UVICORN}"
        )
        logger.warning(
            "serving without private hooks (%s): the front door stands behind BentoML's "
            "middleware chain, answering the same; slower, and without per-worker sockets, "
            "greedy accepts, coalesced writes and head limits below the app",
            why,
        )
    return False


class PublicDoor:
    """The front door as an ASGI middleware given to `Service.add_asgi_middleware` (BentoML's
    public extension point): BentoML builds it with its app inside, so BentoML's request
    metrics, tracing, access log, timeout and concurrency limit stand in front of it."""

    def __init__(self, app: Any, wrap: AppWrapper) -> None:
        self.app = wrap(app)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def public_door(service: Service[Any], wrap: AppWrapper) -> None:
    """Make every worker of `service` serve `wrap(the rest of BentoML's app)` inside BentoML's
    middleware chain, through public API only."""
    service.add_asgi_middleware(PublicDoor, wrap=wrap)


_ORIGINAL_TO_ASGI = Service.to_asgi
_WRAPPERS: dict[int, AppWrapper] = {}  # id(service) -> what stands in front of its app


def _to_asgi(self: Service[Any], is_main: bool = True) -> Any:
    with logs.start_up_errors():  # e.g. a tracing exporter that is not installed: logged whole
        app = _ORIGINAL_TO_ASGI(self, is_main)
    wrap = _WRAPPERS.get(id(self))
    if wrap is None:
        return app
    router = getattr(app, "router", None)
    if router is not None and hasattr(router, "redirect_slashes"):
        router.redirect_slashes = False  # its Location came from the Host header: 404 instead
    return wrap(app)


def serve_behind(service: Service[Any], wrap: AppWrapper) -> None:
    """Make every worker of `service` serve `wrap(BentoML's ASGI app)`."""
    _WRAPPERS[id(service)] = wrap
    Service.to_asgi = _to_asgi


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
            # The response starts, or the handler ends without one (it raised): either way
            # the timeout no longer applies, and an exception must not wait out the timer.
            await asyncio.wait((started, handler), return_when=asyncio.FIRST_COMPLETED)
            if started.done() and started.exception() is not None:  # the timer fired first
                if handler.cancel():  # the one error shape, as the door's own 504
                    body = timed_out(self.timeout).body()
                    await respond(send, 504, body, list(JSON_HEADERS))
                return None
            timer.cancel()
            await handler
        finally:
            timer.cancel()
            if not started.done():
                started.cancel()
        return None


def apply() -> None:
    """Swap the middleware class BentoML's app builder looks up (it imports it by name from
    `traffic` each time it builds an app)."""
    original = traffic.TimeoutMiddleware
    if original is TimerCancellingTimeoutMiddleware:
        return
    traffic.TimeoutMiddleware = TimerCancellingTimeoutMiddleware  # type: ignore[misc]


def listen_per_worker(enabled: bool) -> None:
    """In the `bentoml serve` process: the arbiter's control endpoints on IPC sockets in a 0700
    folder (always), and, when `enabled`, the API server's shared socket given SO_REUSEPORT
    before the arbiter binds it, so that each worker listens on a socket of its own as well
    (refuses to start, as without this, when the port is in use)."""

    def create_standalone_arbiter(
        watchers: list[Any], *, threaded: bool = False, **kwargs: Any
    ) -> Any:
        for shared in kwargs.get("sockets") or ():
            if enabled and shared.name == API_SERVER_NAME and not shared.is_unix:
                try:
                    listeners.claim_port(shared, shared.host, shared.port)
                except listeners.PortInUseError as error:
                    raise SystemExit(f"credit-risk: cannot serve: {error.strerror}") from None
        # As BentoML's own factory, but with IPC endpoints: only this user can reach them.
        folder = tempfile.mkdtemp(prefix="credit-risk-circus-")  # mode 0700
        arbiter_class = bentoml_circus.ThreadedArbiter if threaded else bentoml_circus.Arbiter
        arbiter = arbiter_class(
            watchers,
            endpoint=f"ipc://{folder}/control",
            pubsub_endpoint=f"ipc://{folder}/pubsub",
            check_delay=kwargs.pop("check_delay", 10),
            **kwargs,
        )
        arbiter.exit_stack.callback(shutil.rmtree, folder, ignore_errors=True)
        return arbiter

    bentoml_circus.create_standalone_arbiter = create_standalone_arbiter


_ORIGINAL_STARTUP = uvicorn.Server.startup
_ORIGINAL_SHUTDOWN = uvicorn.Server.shutdown
_ACCEPTERS: dict[int, list[GreedyAccept]] = {}  # id(uvicorn server) -> its accepters


def extend_worker_startup(
    accept_interval_s: float, coalesce_writes: bool, head_limits: HeadLimits | None = None
) -> None:
    """A worker's uvicorn also listens on a socket of its own when the shared socket allows it
    (`listen_per_worker`), writes each response in one write (`coalesce_writes`,
    service/http/writes.py: its protocol class, which uvicorn's config has loaded by startup,
    gets a coalescing transport), and runs a `GreedyAccept` beside each listening socket (every
    `accept_interval_s`; 0 leaves accepting to uvloop alone). With `head_limits`, the
    protocol bounds request heads and the time to send heads and bodies (head_limits.py)."""

    async def startup(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        if sockets:
            own = [listeners.own_listener(s) for s in sockets if listeners.shares_port(s)]
            # uvicorn's servers listen on these after the app's start-up, and own them:
            # `shutdown` closes them with the servers.
            sockets = [*own, *sockets]
        protocol_class = self.config.http_protocol_class
        if coalesce_writes:
            protocol_class = coalescing(protocol_class)
        if head_limits is not None:
            protocol_class = guarded(protocol_class, Guard(head_limits, RequestIds()))
            self.config.h11_max_incomplete_event_size = head_limits.max_head_bytes  # h11's own
        self.config.http_protocol_class = protocol_class
        logs.skip_unwritten_access_lines()  # logging is configured by now
        await _ORIGINAL_STARTUP(self, sockets)
        if not sockets or not self.started or accept_interval_s <= 0:
            return
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        _ACCEPTERS[id(self)] = [
            GreedyAccept(loop, sock, create_protocol, interval_s=accept_interval_s,
                         ssl=config.ssl).start()
            for sock in sockets
        ]  # fmt: skip

    async def shutdown(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        for accepter in _ACCEPTERS.pop(id(self), []):
            accepter.close()
        await _ORIGINAL_SHUTDOWN(self, sockets)

    uvicorn.Server.startup = startup  # type: ignore[method-assign]
    uvicorn.Server.shutdown = shutdown  # type: ignore[method-assign]
