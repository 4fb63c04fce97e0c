"""API-key check: a request without a listed key gets 401 from its headers alone.

Sits between the request-id layer and the front door when CREDIT_RISK_API_KEYS_FILE is set.
Every path needs a key unless it is open: the health probes always (`ALWAYS_OPEN`), the
operator's routes (`OPS_PATHS`: /metrics, /info, Swagger and its assets) when ops routes are
set open, and CORS preflights (browsers send them without credentials). A route added later is
keyed without a change here.

The refusal reads no body and allocates little: its status line, headers and body are built
once (the request-id layer adds the id). It carries `Connection: close`, so the body the client
may still be sending is never read: uvicorn closes the connection once the 401 is written.
/metrics names every client and its request counts: when `metrics_clients` is given, only those
clients may read it (another valid key gets 403). Accepted and refused requests on keyed paths are
counted by client name in `credit_risk_requests_total` (refused ones as client "-").
"""

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import RequestError
from service.http.api_keys import ApiKeys
from service.http.asgi import JSON_HEADERS, Header
from service.metrics import MetricsBuffer
from service.records.context import CLIENT

ALWAYS_OPEN = frozenset({"/livez", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})
OPS_PATHS = frozenset({"/metrics", "/info", "/", "/docs.json", "/schema.json"})
OPS_PREFIXES = ("/static_content/", "/assets/")  # Swagger UI's files
REFUSED_CLIENT = "-"  # not a valid client name: names start with a letter or digit
OTHER_ENDPOINT = "other"  # a path outside the known routes (keeps label values bounded)
REALM = b'Bearer realm="credit-risk"'


METRICS_PATH = "/metrics"


def _refusal(
    message: str, challenge: bytes | None, status: int = 401
) -> tuple[list[Header], bytes]:
    body = RequestError(status, message).body()
    headers = [
        *JSON_HEADERS,
        *([(b"www-authenticate", challenge)] if challenge is not None else []),
        (b"connection", b"close"),
        (b"content-length", str(len(body)).encode()),
    ]
    return headers, body


MISSING = _refusal(
    "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`", REALM
)
INVALID = _refusal("the API key is not valid", REALM + b', error="invalid_token"')
NOT_FOR_METRICS = _refusal(
    "this API key may not read /metrics (CREDIT_RISK_METRICS_CLIENTS)", None, status=403
)


def presented_key(scope: Scope) -> bytes | None:
    """The key in `Authorization: Bearer <key>`, else in `X-API-Key`, else None."""
    fallback = None
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return bytes(value[7:].strip())
        if name == b"x-api-key":
            fallback = bytes(value.strip())
    return fallback


class ClientMetrics:
    """credit_risk_requests_total{client, endpoint, http_response_code}, buffered."""

    def __init__(self, buffer: MetricsBuffer, endpoints: frozenset[str]) -> None:
        import prometheus_client as prom

        self._total = prom.Counter(
            "credit_risk_requests",
            "Requests on keyed routes, by client (the API key's name; '-' for refused ones)",
            ["client", "endpoint", "http_response_code"],
            registry=None,
        )
        self._buffer = buffer
        self.endpoints = endpoints  # named in the endpoint label; any other path is OTHER
        self._series: dict[tuple[str, str, int], Any] = {}

    def observe(self, client: str, path: str, status: int) -> None:
        endpoint = path if path in self.endpoints else OTHER_ENDPOINT
        series = self._series.get((client, endpoint, status))
        if series is None:
            series = self._series[client, endpoint, status] = self._buffer.counter(
                self._total, client, endpoint, str(status)
            )
        series.count += 1
        self._buffer.touch()


class ApiKeyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        keys: ApiKeys,
        *,
        ops_open: bool,
        metrics_clients: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.keys = keys
        self.metrics_clients = metrics_clients  # empty: any valid key reads /metrics
        self.open_paths = ALWAYS_OPEN | OPS_PATHS if ops_open else ALWAYS_OPEN
        self.open_prefixes = OPS_PREFIXES if ops_open else ()
        self.metrics: ClientMetrics | None = None

    def count_clients(self, buffer: MetricsBuffer, endpoints: frozenset[str]) -> None:
        """Count requests by client from now on (`endpoints`: the paths named as such). Called
        again when the paths change (a models switch's versioned V2 paths): the same counter,
        the new names."""
        if self.metrics is None:
            self.metrics = ClientMetrics(buffer, endpoints | OPS_PATHS)
        else:
            self.metrics.endpoints = endpoints | OPS_PATHS

    def is_open(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return (
            path in self.open_paths
            or scope.get("method") == "OPTIONS"
            or (bool(self.open_prefixes) and path.startswith(self.open_prefixes))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or self.is_open(scope):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        client = self.keys.client(key) if key else None
        refusal = None
        if client is None:
            if kind == "websocket":  # BentoML serves none; refuse without a handshake
                await send({"type": "websocket.close", "code": 1008})
                return
            status, refusal = 401, MISSING if key is None else INVALID
        elif (
            self.metrics_clients
            and client not in self.metrics_clients
            and scope["path"] == METRICS_PATH
        ):
            status, refusal = 403, NOT_FOR_METRICS
        if refusal is not None:
            headers, body = refusal
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            if self.metrics is not None:
                self.metrics.observe(client or REFUSED_CLIENT, scope["path"], status)
            return
        CLIENT.set(client or REFUSED_CLIENT)  # for decision records; this request's task only
        metrics = self.metrics
        if metrics is None or kind != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before it answers

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            metrics.observe(client or REFUSED_CLIENT, scope["path"], status)  # never None here
