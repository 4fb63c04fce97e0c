"""AdaptiveBatcher: merging, own rows back, no added delay, bounded queue, dropped cancellations."""

import asyncio
import time

import numpy as np
import pytest

from runners.batcher import AdaptiveBatcher, BatchRecord, JoinedModel, OverloadedError
from tests.row_sum_model import CountingModel


def _batcher(
    model: CountingModel, **overrides: object
) -> tuple[AdaptiveBatcher, list[BatchRecord]]:
    records: list[BatchRecord] = []
    options: dict[str, object] = {
        "max_batch_rows": 64,
        "max_queue_rows": 10_000,
        "max_queue_delay_s": 5.0,
        "observer": records.append,
    }
    options.update(overrides)
    return AdaptiveBatcher(model, **options), records  # type: ignore[arg-type]


@pytest.mark.parametrize("offload", [False, True])
def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(offload: bool) -> None:
    model = CountingModel()
    batcher, records = _batcher(model, offload_to_thread=offload)

    async def main() -> list[np.ndarray]:
        rows = [np.full((1 + i % 3, 4), i, dtype=np.float32) for i in range(300)]
        results = await asyncio.gather(*(batcher.predict(r) for r in rows))
        await batcher.close()
        for i, (r, out) in enumerate(zip(rows, results, strict=True)):
            np.testing.assert_array_equal(out, np.full(len(r), 4 * i, dtype=np.float32))
        return results

    asyncio.run(main())
    assert sum(model.calls) == sum(1 + i % 3 for i in range(300))
    assert max(model.calls) <= 64
    assert max(r.requests for r in records) > 1  # batches really formed
    assert len(model.calls) < 300


def test_light_load_dispatches_at_once() -> None:
    model = CountingModel()
    batcher, _ = _batcher(model)

    async def main() -> float:
        worst = 0.0
        for _ in range(50):
            started = time.perf_counter()
            await batcher.predict(np.ones((1, 4), dtype=np.float32))
            worst = max(worst, time.perf_counter() - started)
        await batcher.close()
        return worst

    worst = asyncio.run(main())
    assert model.calls == [1] * 50  # one call per request: nothing waited for company
    assert worst < 0.5  # generous: only guards against a fixed wait being added


def test_under_load_the_first_request_of_a_tick_queues_too() -> None:
    """Once a flush merged requests, every request queues (no direct call a tick) until a flush
    finds a lone request; then requests run at once again."""
    model = CountingModel()
    batcher, records = _batcher(model)

    async def main() -> None:
        def one() -> "asyncio.Future[np.ndarray]":
            return asyncio.ensure_future(batcher.predict(np.ones((1, 4), dtype=np.float32)))

        await asyncio.gather(one(), one(), one())  # the first direct, two merged
        await asyncio.gather(*(one() for _ in range(4)))  # load: all four merged
        await one()  # queued (the last flush merged), and found alone
        await one()  # light load: direct again
        await batcher.close()

    asyncio.run(main())
    assert model.calls == [1, 2, 4, 1, 1]
    assert [r.direct for r in records] == [True, False, False, False, True]


@pytest.mark.parametrize("offload", [False, True])
def test_rows_for_another_model_share_the_flush_with_one_call_per_model(offload: bool) -> None:
    """A canary's challenger rows ride the champion's batcher: merged with its rows, scored
    by their own model in one call, each request answered in order by the model it named."""
    champion = CountingModel()
    challenger = CountingModel()

    def negated(features: np.ndarray) -> np.ndarray:
        return -challenger(features)

    batcher, _ = _batcher(champion, offload_to_thread=offload)

    async def main() -> list[np.ndarray]:
        rows = [np.full((1 + i % 2, 4), i, dtype=np.float32) for i in range(12)]
        models = [negated if i % 3 == 0 else None for i in range(12)]
        results = await asyncio.gather(
            *(batcher.predict(r, model=m) for r, m in zip(rows, models, strict=True))
        )
        await batcher.close()
        for i, out in enumerate(results):
            sign = -1 if i % 3 == 0 else 1
            np.testing.assert_array_equal(out, np.full(1 + i % 2, sign * 4 * i, np.float32))
        return results

    asyncio.run(main())
    challenger_rows = sum(1 + i % 2 for i in range(12) if i % 3 == 0)
    assert sum(challenger.calls) == challenger_rows
    assert sum(champion.calls) == sum(1 + i % 2 for i in range(12)) - challenger_rows
    assert len(challenger.calls) < 4  # merged, not one call per request


@pytest.mark.parametrize("offload", [False, True])
def test_a_failing_other_model_fails_only_its_own_requests(offload: bool) -> None:
    champion = CountingModel()

    def broken(features: np.ndarray) -> np.ndarray:
        raise RuntimeError("challenger down")

    batcher, _ = _batcher(champion, offload_to_thread=offload)

    async def main() -> list[object]:
        calls = [
            batcher.predict(np.full((1, 4), i, dtype=np.float32), model=broken if i % 2 else None)
            for i in range(6)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    for i, result in enumerate(results):
        if i % 2:
            assert isinstance(result, RuntimeError)
        else:
            np.testing.assert_array_equal(result, [4.0 * i])


class JoinedNegation:
    """A JoinedModel's two calls: the challenger answers minus the row sum; `with_own` scores
    both models' rows in one call (the champion's over every row, as runners/pair.py does)."""

    def __init__(self, champion: CountingModel, fail: bool = False) -> None:
        self.champion = champion
        self.fail = fail
        self.alone: list[int] = []
        self.joined: list[tuple[int, list[int]]] = []

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.alone.append(len(features))
        return -features.sum(axis=1).astype(np.float32)

    def with_own(
        self, features: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        self.joined.append((len(features), positions.tolist()))
        if self.fail:
            raise RuntimeError("joined session down")
        own = features.sum(axis=1).astype(np.float32)
        return own, -features[positions].sum(axis=1).astype(np.float32)


def _mixed_requests(
    batcher: AdaptiveBatcher, challenger: JoinedModel
) -> "asyncio.Future[list[np.ndarray]]":
    rows = [np.full((1 + i % 2, 4), i, dtype=np.float32) for i in range(12)]
    models = [challenger if i % 3 == 1 else None for i in range(12)]
    return asyncio.gather(*(batcher.predict(r, model=m) for r, m in zip(rows, models, strict=True)))


def _assert_mixed_answers(results: list[np.ndarray]) -> None:
    for i, out in enumerate(results):
        sign = -1 if i % 3 == 1 else 1
        np.testing.assert_array_equal(out, np.full(1 + i % 2, sign * 4 * i, np.float32))


def _joined_run(
    offload: bool, fail: bool = False
) -> tuple[CountingModel, JoinedNegation, list[BatchRecord]]:
    """12 requests, every third the joined challenger's, through one batcher; answers checked."""
    champion = CountingModel()
    calls = JoinedNegation(champion, fail=fail)
    challenger = JoinedModel(calls.predict, calls.with_own)
    batcher, records = _batcher(champion, offload_to_thread=offload)

    async def main() -> list[np.ndarray]:
        results = await _mixed_requests(batcher, challenger)
        await batcher.close()
        return results

    _assert_mixed_answers(asyncio.run(main()))
    return champion, calls, records


@pytest.mark.parametrize("offload", [False, True])
def test_rows_of_a_joined_model_and_the_batchers_own_make_one_call(offload: bool) -> None:
    """A flush holding rows of both: one joined call, told where the other model's rows are,
    and each request answered by the model it named."""
    champion, calls, records = _joined_run(offload)
    # In the loop the first request (the champion's) runs at once and the other 11 queue; with
    # the model on a thread all 12 queue. Either way the queued ones make one joined call.
    flushed = list(range(12)) if offload else list(range(1, 12))
    assert champion.calls == ([] if offload else [1])
    assert not calls.alone
    starts = np.cumsum([0] + [1 + i % 2 for i in flushed])
    expected = [
        int(starts[k]) + row
        for k, i in enumerate(flushed)
        if i % 3 == 1
        for row in range(1 + i % 2)
    ]
    assert calls.joined == [(int(starts[-1]), expected)]
    assert records[-1].requests == len(flushed)  # one call, one record


@pytest.mark.parametrize("offload", [False, True])
def test_a_failing_joined_call_falls_back_to_one_call_per_model(offload: bool) -> None:
    _, calls, _ = _joined_run(offload, fail=True)
    assert calls.joined and calls.alone  # tried once, then each model on its own rows


def test_full_queue_refuses_with_overloaded_error() -> None:
    model = CountingModel()
    batcher, _ = _batcher(model, max_queue_rows=8)

    async def main() -> list[object]:
        rows = [np.ones((4, 4), dtype=np.float32) for _ in range(5)]
        results = await asyncio.gather(*(batcher.predict(r) for r in rows), return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, OverloadedError)]
    # The first request of the tick runs directly; two more fill the 8-row queue.
    assert len(refused) == 2 and "queue full" in str(refused[0])
    assert sum(model.calls) == 12


def test_cancelled_request_costs_no_model_rows() -> None:
    model = CountingModel()
    batcher, _ = _batcher(model)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.predict(np.ones((1, 4), dtype=np.float32)))
        doomed = asyncio.ensure_future(batcher.predict(np.ones((7, 4), dtype=np.float32)))
        kept = asyncio.ensure_future(batcher.predict(np.ones((2, 4), dtype=np.float32)))
        await asyncio.sleep(0)  # first ran directly; the other two queued, not yet flushed
        doomed.cancel()
        np.testing.assert_array_equal(await kept, [4.0, 4.0])
        assert first.done()
        await batcher.close()

    asyncio.run(main())
    assert model.calls == [1, 2]


def test_model_error_fails_only_that_batch_and_batcher_keeps_going() -> None:
    calls = {"n": 0}

    def flaky(features: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return features.sum(axis=1)

    batcher = AdaptiveBatcher(flaky, max_batch_rows=8, max_queue_rows=100, max_queue_delay_s=5)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.predict(np.ones((1, 2), dtype=np.float32))
        np.testing.assert_array_equal(
            await batcher.predict(np.ones((1, 2), dtype=np.float32)), [2.0]
        )
        await batcher.close()

    asyncio.run(main())
