"""AdaptiveBatcher under overload and cancellation: the queue drains in one flush, saturation is
visible before a request is parsed, and a caller that leaves never breaks its batch."""

import asyncio

import numpy as np

from runners.batcher import AdaptiveBatcher
from tests.row_sum_model import CountingModel, until_set

RowSumModel = CountingModel


def _rows(value: float, n: int) -> np.ndarray:
    return np.full((n, 2), value, dtype=np.float32)


def test_in_loop_flush_drains_the_whole_queue_in_one_tick() -> None:
    model = RowSumModel()
    batcher = AdaptiveBatcher(model, max_batch_rows=200, max_queue_rows=10_000, max_queue_delay_s=5)

    async def main() -> None:
        tasks = [asyncio.ensure_future(batcher.predict(_rows(i, 100))) for i in range(6)]
        await asyncio.sleep(0)  # the first ran directly; five queued, one flush scheduled
        assert batcher.queued_rows == 500
        await asyncio.sleep(0)  # that one flush sent all of them
        assert batcher.queued_rows == 0
        for i, result in enumerate(await asyncio.gather(*tasks)):
            np.testing.assert_array_equal(result, np.full(100, 2 * i, dtype=np.float32))

    asyncio.run(main())
    assert model.calls == [100, 200, 200, 100]


def test_refusal_reason_says_why_before_anything_is_parsed() -> None:
    model = RowSumModel(held_calls=1)
    batcher = AdaptiveBatcher(
        model, max_batch_rows=8, max_queue_rows=12, max_queue_delay_s=0.1, offload_to_thread=True
    )

    async def main() -> None:
        assert batcher.refusal_reason() is None
        first = asyncio.ensure_future(batcher.predict(_rows(1, 4)))
        await until_set(model.entered[0])  # its call holds the model thread
        waiting = [asyncio.ensure_future(batcher.predict(_rows(2, 4))) for _ in range(2)]
        await asyncio.sleep(0)
        assert batcher.refusal_reason() is None  # 8 of 12 rows queued, just now
        await asyncio.sleep(0.15)  # the model is held: the queue's head ages past 0.1 s
        assert "behind" in (batcher.refusal_reason() or "")
        waiting.append(asyncio.ensure_future(batcher.predict(_rows(2, 4))))
        await asyncio.sleep(0)
        assert "queue full" in (batcher.refusal_reason() or "")
        model.release_all()
        await asyncio.gather(first, *waiting, return_exceptions=True)
        assert batcher.refusal_reason() is None
        await batcher.close()

    asyncio.run(main())


def test_caller_leaving_mid_call_does_not_break_its_batch() -> None:
    """Two requests merged into one model call; one caller is cancelled while the call runs:
    the other still gets exactly its own rows back, and the batcher keeps serving."""
    model = RowSumModel(held_calls=2)
    batcher = AdaptiveBatcher(
        model, max_batch_rows=64, max_queue_rows=100, max_queue_delay_s=5, offload_to_thread=True
    )

    async def main() -> None:
        blocker = asyncio.ensure_future(batcher.predict(_rows(1, 1)))
        await until_set(model.entered[0])
        leaving = asyncio.ensure_future(batcher.predict(_rows(5, 3)))
        staying = asyncio.ensure_future(batcher.predict(_rows(7, 2)))
        await asyncio.sleep(0)  # both queued behind the held call
        model.released[0].set()
        await blocker  # now the two queued requests are dispatched together
        await until_set(model.entered[1])  # ... and their merged call is running
        leaving.cancel()
        model.released[1].set()
        np.testing.assert_array_equal(await staying, [14.0, 14.0])
        assert leaving.cancelled()
        np.testing.assert_array_equal(await batcher.predict(_rows(3, 1)), [6.0])
        await batcher.close()

    try:
        asyncio.run(main())
    finally:
        model.release_all()
    assert model.calls == [1, 5, 1]
