"""The shadow queue (service/shadow.py) with a real exported model behind a real batcher: the
requests queued together are scored in one challenger call after their turn, each request's rows
settled with their own probabilities; a refused call settles them as dropped; a bulk request is
scored alone; requests queued with different challengers are never scored together."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pytest

from export.pipeline import ExportSummary
from runners.base import FeatureMatrix, Probabilities, Runner
from runners.batcher import AdaptiveBatcher
from runners.bulk import ChunkedPredictor
from service.settings import ServiceSettings
from service.shadow import ShadowQueue, ShadowRows
from service.wiring import load_engines


@dataclass(frozen=True)
class Model:
    """The challenger as the scorer serves it: its batcher, its bulk predictor."""

    model_tag: str
    runner: Runner
    bulk: ChunkedPredictor
    batcher: AdaptiveBatcher
    calls: list[int] = field(default_factory=list)  # rows of each engine call of the batcher

    @property
    def predict_rows(self) -> Callable[[FeatureMatrix], Awaitable[Probabilities]]:
        return self.batcher.predict


def _model(tag: str, max_queue_rows: int = 4096) -> Model:
    runner, bulk = load_engines(ServiceSettings(model_tag=tag))
    calls: list[int] = []

    def predict(features: FeatureMatrix) -> Probabilities:
        calls.append(len(features))
        return runner.predict(features)

    batcher = AdaptiveBatcher(
        predict, max_batch_rows=256, max_queue_rows=max_queue_rows, max_queue_delay_s=5.0
    )
    return Model(tag, runner, bulk, batcher, calls)


@dataclass
class Settled:
    passes: list[tuple[list[ShadowRows[Model]], Probabilities | None]] = field(default_factory=list)

    def __call__(self, parts: Sequence[ShadowRows[Model]], scored: Probabilities | None) -> None:
        self.passes.append((list(parts), scored))


@pytest.fixture(scope="module")
def features(exported: ExportSummary) -> FeatureMatrix:
    shape = (400, exported.n_features)
    return np.random.default_rng(3).uniform(0, 3, size=shape).astype(np.float32)


def _rows(model: Model, features: FeatureMatrix) -> ShadowRows[Model]:
    champion_probabilities = np.zeros(len(features), dtype=np.float32)
    return ShadowRows(model, model, features, None, champion_probabilities, None)


def test_requests_of_one_moment_share_one_challenger_call_after_their_turn(
    exported: ExportSummary, features: FeatureMatrix
) -> None:
    challenger, settled = _model(exported.onnx_tag), Settled()

    async def go() -> None:
        queue = ShadowQueue(settled, pass_rows=1_000, delay_s=0.0)
        sizes = [1, 3, 1, 5, 2]
        starts = np.cumsum([0, *sizes])
        for start, stop in pairwise(starts.tolist()):
            queue.submit(_rows(challenger, features[start:stop]))
        assert challenger.calls == [] and queue.rows_in_flight == 12  # not on the request's turn
        for _ in range(5):
            await asyncio.sleep(0)  # the pass runs on a later turn without anyone waiting for it
        assert challenger.calls == [12] and queue.rows_in_flight == 0
        await queue.finish()
        queue.close()

    asyncio.run(go())
    ((parts, scored),) = settled.passes
    assert [len(part.features) for part in parts] == [1, 3, 1, 5, 2]  # in queue order
    assert scored is not None
    np.testing.assert_array_equal(scored, challenger.runner.predict(features[:12]))


def test_passes_hold_whole_requests_and_a_bulk_request_is_scored_alone(
    exported: ExportSummary, features: FeatureMatrix
) -> None:
    challenger, settled = _model(exported.onnx_tag), Settled()

    async def go() -> None:
        queue = ShadowQueue(settled, pass_rows=10)
        for start in (0, 4, 8):
            queue.submit(_rows(challenger, features[start : start + 4]))
        queue.submit(_rows(challenger, features[12:312]))  # more than a pass: the shadow thread
        await queue.finish()  # scores what is queued now, without waiting out the delay
        assert queue.rows_in_flight == 0
        queue.close()

    asyncio.run(go())
    assert challenger.calls == [8, 4]  # 4 + 4 + 4 > 10: the third request waits for the next
    by_rows = {sum(len(p.features) for p in parts): (parts, s) for parts, s in settled.passes}
    assert sorted(by_rows) == [4, 8, 300]
    for parts, scored in by_rows.values():
        rows = np.concatenate([part.features for part in parts])
        assert scored is not None
        np.testing.assert_allclose(scored, challenger.runner.predict(rows), atol=1e-6)


def test_a_refused_challenger_call_settles_its_requests_as_dropped(
    exported: ExportSummary, features: FeatureMatrix
) -> None:
    challenger, settled = _model(exported.onnx_tag, max_queue_rows=10), Settled()

    async def go() -> None:
        queue = ShadowQueue(settled, pass_rows=1_000)
        for start in (0, 6):
            queue.submit(_rows(challenger, features[start : start + 6]))
        await queue.finish()
        assert queue.rows_in_flight == 0
        queue.close()

    asyncio.run(go())
    ((parts, scored),) = settled.passes  # 12 rows: more than the batcher's queue takes
    assert scored is None and len(parts) == 2 and challenger.calls == []


def test_requests_queued_with_different_challengers_are_scored_apart(
    exported: ExportSummary, features: FeatureMatrix
) -> None:
    before, after, settled = _model(exported.onnx_tag), _model(exported.onnx_tag), Settled()

    async def go() -> None:
        queue = ShadowQueue(settled, pass_rows=1_000)
        queue.submit(_rows(before, features[:2]))
        queue.submit(_rows(after, features[2:5]))  # a models switch in between
        queue.submit(_rows(before, features[5:6]))
        await queue.finish()
        queue.close()

    asyncio.run(go())
    assert before.calls == [3] and after.calls == [3]
    for parts, scored in settled.passes:
        assert len({id(part.challenger) for part in parts}) == 1
        assert scored is not None and len(scored) == 3
