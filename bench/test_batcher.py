"""Batcher overhead: one request through AdaptiveBatcher vs a direct model call (ONNX Runtime).

Both paths run as a coroutine on the same event loop, so the difference is the batcher alone.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.batcher import AdaptiveBatcher
from runners.onnx_runner import OnnxRunner


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.mark.parametrize("path", ["direct", "adaptive_batcher"])
def test_one_request(
    benchmark: BenchmarkFixture,
    loop: asyncio.AbstractEventLoop,
    records: list[dict[str, object]],
    exported: ExportSummary,
    path: str,
) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, threads=1, device="cpu")
    features = FeatureEncoder(runner.stored.feature_names).encode_one(records[0])
    batcher = AdaptiveBatcher(
        runner.predict, max_batch_rows=256, max_queue_rows=4096, max_queue_delay_s=1
    )

    async def direct() -> np.ndarray:
        return runner.predict(features)

    async def batched() -> np.ndarray:
        return await batcher.predict(features)

    request: Callable[[], Awaitable[np.ndarray]] = direct if path == "direct" else batched
    benchmark.group = "one request, ONNX Runtime"
    benchmark.extra_info["path"] = path
    result = benchmark(lambda: loop.run_until_complete(request()))
    assert len(result) == 1
