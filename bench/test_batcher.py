"""Batcher overhead: one request through AdaptiveBatcher vs a direct model call."""

import asyncio

import pytest

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.batcher import AdaptiveBatcher
from runners.onnx_runner import OnnxRunner


@pytest.mark.parametrize("path", ["direct", "adaptive_batcher"])
def test_one_request(benchmark, records, exported: ExportSummary, path: str) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, threads=1, device="cpu")
    features = FeatureEncoder(runner.stored.feature_names).encode_one(records[0])
    batcher = AdaptiveBatcher(
        runner.predict, max_batch_rows=256, max_queue_rows=4096, max_queue_delay_s=1
    )
    loop = asyncio.new_event_loop()

    async def direct() -> object:
        return runner.predict(features)

    async def batched() -> object:
        return await batcher.predict(features)

    coroutine = direct if path == "direct" else batched
    benchmark.group = "one request, ONNX Runtime"
    benchmark.extra_info["path"] = path
    result = benchmark(lambda: loop.run_until_complete(coroutine()))
    assert len(result) == 1  # type: ignore[arg-type]
    loop.close()
