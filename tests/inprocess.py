"""The fast in-process lane: a front door around a scorer, called through ASGI without a server.

httpx's ASGITransport (or plain scope/receive/send calls) drives the very `FrontDoor` a worker
runs, with the same routes, errors and admission, behind the same request-id layer (so error
bodies carry a request id as a server's do); only uvicorn and BentoML's app are missing.
"""

import httpx
import orjson
from starlette.types import ASGIApp

from service import __version__
from service.http.front_door import FrontDoor
from service.http.request_id import RequestIdMiddleware
from service.http.routes import RouteContext, route_table
from service.registry import ENDPOINTS
from service.scoring import CreditScorer
from service.settings import ServiceSettings
from service.v2 import OpenInferenceProtocol
from service.wiring import Worker, WorkerApp, build_front_door, build_worker_app


def door_for_worker(worker: Worker, settings: ServiceSettings | None = None) -> FrontDoor:
    return app_for_worker(worker, settings).door


def app_for_worker(worker: Worker, settings: ServiceSettings | None = None) -> WorkerApp:
    """A worker's whole stack (request ids, API keys when `settings` name a key file, door)."""
    stack = build_worker_app(
        build_front_door(settings or worker.settings), settings or worker.settings
    )
    stack.open(worker, bentoml_metrics=False)
    return stack


def door_for_scorer(scorer: CreditScorer, settings: ServiceSettings | None = None) -> FrontDoor:
    """A door around a hand-built scorer (a test's own batcher or model)."""
    door = build_front_door(settings or ServiceSettings())
    v2 = OpenInferenceProtocol(scorer, __version__)
    context = RouteContext(scorer, v2, orjson.dumps({"model": scorer.model_tag}), lambda: True)
    door.open(route_table(ENDPOINTS, context, {}), None)
    return door


def client_for(door: FrontDoor) -> httpx.AsyncClient:
    """A client of `door` behind the request-id layer every worker has."""
    return client_for_app(RequestIdMiddleware(door))


def client_for_app(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://door")
