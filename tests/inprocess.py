"""The fast in-process lane: a front door around a scorer, called through ASGI without a server.

httpx's ASGITransport (or plain scope/receive/send calls) drives the very `FrontDoor` a worker
runs, with the same routes, errors and admission; only uvicorn and BentoML's app are missing.
"""

import httpx

from service import __version__
from service.http.front_door import FrontDoor
from service.http.routes import scoring_routes
from service.scoring import CreditScorer
from service.settings import ServiceSettings
from service.v2 import OpenInferenceProtocol
from service.wiring import Worker, build_front_door, open_front_door


def door_for_worker(worker: Worker, settings: ServiceSettings | None = None) -> FrontDoor:
    door = build_front_door(settings or worker.settings)
    open_front_door(door, worker, bentoml_metrics=False)
    return door


def door_for_scorer(scorer: CreditScorer, settings: ServiceSettings | None = None) -> FrontDoor:
    """A door around a hand-built scorer (a test's own batcher or model)."""
    door = build_front_door(settings or ServiceSettings())
    v2 = OpenInferenceProtocol(scorer, __version__)
    door.open(scoring_routes(scorer, {"model": scorer.model_tag}, None, lambda: True, v2), None)
    return door


def client_for(door: FrontDoor) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=door), base_url="http://door")
