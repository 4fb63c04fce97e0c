"""A client that disconnects while its request is queued costs no model call and breaks nothing.

Driven in-process through the real ASGI middleware, scorer, batcher and ONNX Runtime runner;
only the model call is slowed (in its worker thread) so that the second request is still queued
when its client goes away.
"""

import asyncio
import time

import numpy as np
import orjson

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.batcher import AdaptiveBatcher
from runners.bulk import ChunkedPredictor
from runners.onnx_runner import OnnxRunner
from service.decisions import Thresholds
from service.lean_routes import LeanRoutesMiddleware, ScorerHolder
from service.scoring import CreditScorer, Limits


async def _never_called(scope: object, receive: object, send: object) -> None:
    raise AssertionError("the lean route should have answered")


def test_disconnected_queued_request_costs_no_model_call(exported: ExportSummary, records) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, device="cpu")
    model_rows: list[int] = []

    def slow_predict(features: np.ndarray) -> np.ndarray:
        model_rows.append(len(features))
        time.sleep(0.3)
        return runner.predict(features)

    batcher = AdaptiveBatcher(
        slow_predict,
        max_batch_rows=64,
        max_queue_rows=1000,
        max_queue_delay_s=10,
        offload_to_thread=True,
    )
    scorer = CreditScorer(
        model_tag=runner.tag,
        encoder=FeatureEncoder(runner.stored.feature_names),
        predict_rows=batcher.predict,
        bulk=ChunkedPredictor(runner, runner, 256, 65536),
        thresholds=Thresholds(0.3, 0.5),
        limits=Limits(1000, 1000, 1 << 20),
    )
    app = LeanRoutesMiddleware(_never_called)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/classify",
        "headers": [(b"content-type", b"application/json")],
    }

    async def request(
        record: dict[str, object], disconnect_after: float | None
    ) -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []
        delivered = False

        async def receive() -> dict[str, object]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": orjson.dumps(record), "more_body": False}
            if disconnect_after is None:
                await asyncio.sleep(3600)
            await asyncio.sleep(disconnect_after)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    async def scenario() -> tuple[list[dict[str, object]], ...]:
        ScorerHolder.scorer = scorer
        try:
            first = asyncio.ensure_future(request(records[0], None))  # occupies the model thread
            await asyncio.sleep(0.05)
            gone = asyncio.ensure_future(request(records[1], 0.05))  # queued, then disconnects
            kept = asyncio.ensure_future(request(records[2], None))  # queued in the same batch
            return await asyncio.gather(first, gone, kept)
        finally:
            ScorerHolder.scorer = None
            await batcher.close()

    first, gone, kept = asyncio.run(scenario())
    assert gone == []  # nothing sent to a client that left
    for sent, record in ((first, records[0]), (kept, records[2])):
        assert sent[0]["status"] == 200
        body = orjson.loads(sent[1]["body"])
        expected = runner.predict(FeatureEncoder(runner.stored.feature_names).encode_one(record))[0]
        assert abs(body["probability"] - float(expected)) < 1e-6
    assert model_rows == [1, 1]  # the disconnected request never reached the model
