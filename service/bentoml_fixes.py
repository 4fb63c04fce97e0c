"""Every place this project touches BentoML's (and uvicorn's) internals, used only on the one
version of each it was tested with (`private_hooks_usable`): on any other version, or with
CREDIT_RISK_PRIVATE_HOOKS=off, the server starts without them, the front door given to
BentoML's public `Service.add_asgi_middleware` (`public_door`), answering the same contract
(tests/service/test_contract.py runs in both modes), with one warning naming the versions.

The surviving hooks, what each replaces, what it is worth (measured on this 2-core machine, as
ratios within one run; bench/REPORT_NOTES.md has the runs), and the upstream change that would
make it unnecessary:

1. `serve_behind` (patches `Service.to_asgi`): the front door stands in front of BentoML's app
   in each worker instead of inside its middleware chain, and Starlette's trailing-slash
   redirect (its `Location` built from the Host header) is off. The door then does
   BentoML's middleware work (request metrics, tracing, timeout, max concurrency, access lines)
   the lean way (service/http/). Worth, with the hooks below (all off together): /classify at
   64 connections 3,576 vs 737 req/s (4.9x; p99 44 vs 189 ms), median of 3 alternating rounds,
   `python -m bench.front_door --seconds 5 --no-mlserver --no-overload --compare
   CREDIT_RISK_PRIVATE_HOOKS=off`, load average 11-15 on 2 cores. Upstream: a
   public hook to wrap the worker's whole ASGI app (an "outermost middleware" option).
2. `listen_per_worker` (replaces `bentoml._internal.utils.circus.create_standalone_arbiter`):
   SO_REUSEPORT on the API socket so each worker adds a listener of its own
   (service/http/listeners.py, CREDIT_RISK_REUSE_PORT), and the arbiter's control endpoints on
   `ipc://` sockets in a 0700 folder instead of unauthenticated TCP ports of 127.0.0.1.
   Worth: removes the rounds where one worker takes all connections and idles the other
   (`bench.front_door --compare CREDIT_RISK_REUSE_PORT=false`: a 64/0 round at 4,679 req/s
   against 7,968-9,360); the IPC endpoints close a local code-execution path
   (tests/security/test_network_limits.py). Upstream: a `reuse_port` option in BentoML's
   serve config, and circus endpoints on IPC by default.
3. `extend_worker_startup` (wraps `uvicorn.Server.startup`/`shutdown` and builds uvicorn's
   protocol as `startup` does): per-worker listening sockets served, writes of a response
   coalesced into one (service/http/writes.py), a `GreedyAccept` per socket
   (service/http/accept.py), bounded heads with head and body timeouts
   (service/http/head_limits.py), and the keep-alive timeout from CREDIT_RISK_KEEP_ALIVE_S
   (BentoML passes uvicorn 5 s unless `bentoml serve --timeout-keep-alive` says otherwise).
   Worth: coalesced writes +25% median req/s on /classify
   (`bench.front_door --compare CREDIT_RISK_COALESCE_WRITES=false`); greedy accepts take the
   2,048-connection flood's accept queue from 377-782 to 0 and its timeouts from 369 to 0
   (CREDIT_RISK_ACCEPT_INTERVAL_MS=10 vs 0); head limits bound what a client costs before
   the API-key check (tests/security). Upstream: uvicorn accepting all pending connections
   per loop turn (libuv accepts one), writing head and body in one call, and h11/httptools
   limits on header count and head time.

Elsewhere, not switched off by the version check (each pinned or with a public fallback);
the in-process ones measured by `python -m bench.private_hooks` (public way against ours,
alternating rounds in one run; bench/results/private_hooks.json):
- prometheus-client's internals (service/metrics.py, pinned exactly): buffered histogram and
  counter children written once per flush through `_buckets`/`_sum`. Worth: 8.2 us per request
  (public `observe` + `inc` in multiprocess mode 8.3 us, buffered 0.15 us; median of 7 rounds,
  load 5-7), about 8% of a worker's time per request at 10k req/s. Upstream: a public bulk
  `observe(value, count)` or a multiprocess value that batches its mmap writes.
- ONNX Runtime's `_sess.run` (runners/onnx_runner.py, onnxruntime pinned exactly; the public
  `run` on any other version, e.g. the GPU image's onnxruntime-gpu): 5.0 us of a
  22.7 us one-row call, 4.3 us of a 312 us 64-row call (same run), paid once per merged model
  call. Upstream: a `run` without the per-call name and option checks (or `run_with_ortvalues`
  taking numpy arrays).
- the OpenTelemetry SDK provider's `_active_span_processor` (service/http/tracing.py): an
  unsampled request costs one random draw instead of BentoML's sampler recording a span (~50
  us; `python -m bench.tracing` shows sample rate 0.01 at 0.99x of tracing off); BentoML's
  tracer where it is missing. Upstream: BentoML's sampler not recording unsampled spans.
- BentoML's configuration container and `server_context` (service/http/request_metrics.py,
  service/http/tracing.py, service/app.py): reads of BentoML's own settings (metrics
  namespace, tracing configuration, worker index), no speed to measure; no public accessor.
- the SIGTERM handler (service/http/drain.py): the drain's reliability (every accepted request
  answered, tests/reliability); upstream: a drain hook in BentoML's worker shutdown.

Not a hook: uvicorn's `access_log=False` is what skips its access lines, but BentoML builds
uvicorn's Config itself and offers no such option, so `logs.skip_unwritten_access_lines` does
what that option does (the `uvicorn.access` logger stops propagating; public `logging` API),
in both modes, when logging says the lines would be dropped anyway.

Removed: the timer-cancelling replacement of BentoML's timeout middleware (the door enforces
the timeout on its routes, service/http/timeout.py; BentoML's own middleware is left on the
Swagger pages, probes and /metrics). tests/service/test_bentoml_fixes.py observes each hook by
behaviour on a real uvicorn or server.
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
from bentoml._internal.utils import circus as bentoml_circus

from service import logs
from service.http import listeners
from service.http.accept import GreedyAccept
from service.http.head_limits import Guard, HeadLimits, guarded
from service.http.request_id import RequestIds
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
        # Built at lifespan start-up, before uvicorn makes a protocol per connection.
        logs.skip_unwritten_access_lines()

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
    accept_interval_s: float,
    coalesce_writes: bool,
    head_limits: HeadLimits | None = None,
    keep_alive_s: float | None = None,
) -> None:
    """A worker's uvicorn also listens on a socket of its own when the shared socket allows it
    (`listen_per_worker`), writes each response in one write (`coalesce_writes`,
    service/http/writes.py: its protocol class, which uvicorn's config has loaded by startup,
    gets a coalescing transport), and runs a `GreedyAccept` beside each listening socket (every
    `accept_interval_s`; 0 leaves accepting to uvloop alone). With `head_limits`, the
    protocol bounds request heads and the time to send heads and bodies (head_limits.py).
    `keep_alive_s` replaces the keep-alive timeout BentoML gives uvicorn (each connection's
    protocol reads it from the config when the connection is made, after startup)."""

    async def startup(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        if keep_alive_s is not None:
            self.config.timeout_keep_alive = keep_alive_s  # type: ignore[assignment]
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
