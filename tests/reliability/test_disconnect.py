"""A client that disconnects or times out while its request is queued costs no model call and
breaks nothing; watching for that costs the hot path ~2 µs per request.

In-process: the real ASGI middleware, scorer, batcher and ONNX Runtime runner, with the model
call slowed in its worker thread. Over HTTP: a real `bentoml serve` with the slow model of
conftest.py, clients that time out, and the server's own /metrics as the witness.
"""

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import uvloop

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from features.thresholds import Thresholds
from harness.process import served
from runners.batcher import AdaptiveBatcher
from runners.bulk import ChunkedPredictor
from runners.onnx_runner import OnnxRunner
from service.http.body import ClientGone
from service.http.disconnect import DisconnectWatch
from service.scoring import CreditScorer, Limits
from tests.inprocess import door_for_scorer
from tests.metrics_text import metric_total, scrape_until
from tests.virtual_time import loop as vt_loop
from tests.virtual_time import run as vt_run

Message = dict[str, object]


def test_disconnected_queued_request_costs_no_model_call(exported: ExportSummary, records) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, device="cpu")
    model_rows: list[int] = []
    in_model, release = threading.Event(), threading.Event()

    def held_predict(features: np.ndarray) -> np.ndarray:
        """The model call of the first request holds the model thread until the test says."""
        model_rows.append(len(features))
        in_model.set()
        assert release.wait(30)
        return runner.predict(features)

    batcher = AdaptiveBatcher(
        held_predict,
        max_batch_rows=64,
        max_queue_rows=1000,
        max_queue_delay_s=60,
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
    door = door_for_scorer(scorer)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/classify",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }

    async def request(record: dict[str, object], leave: asyncio.Event | None) -> list[Message]:
        """One request; its client disconnects once `leave` is set (never without one)."""
        sent: list[Message] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": orjson.dumps(record), "more_body": False}
            await (leave or asyncio.Event()).wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await door(scope, receive, send)
        return sent

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(30_000):
            if condition():
                return
            await asyncio.sleep(0.001)
        raise AssertionError("condition never met")

    async def scenario() -> tuple[list[Message], ...]:
        try:
            first = asyncio.ensure_future(request(records[0], None))  # holds the model thread
            await until(in_model.is_set)
            leave = asyncio.Event()
            gone = asyncio.ensure_future(request(records[1], leave))  # queued, then leaves
            kept = asyncio.ensure_future(request(records[2], None))  # queued in the same batch
            await until(lambda: batcher.queued_rows == 2)
            leave.set()
            await gone  # answered 499 while the model thread is still held
            release.set()
            return await asyncio.gather(first, gone, kept)
        finally:
            release.set()
            await batcher.close()

    first, gone, kept = asyncio.run(scenario())
    # The request that left is "answered" 499 with no body (the server drops it).
    assert [m.get("status") for m in gone] == [499, None] and gone[1]["body"] == b""
    for sent, record in ((first, records[0]), (kept, records[2])):
        assert sent[0]["status"] == 200
        body = orjson.loads(sent[1]["body"])  # type: ignore[arg-type]
        expected = runner.predict(FeatureEncoder(runner.stored.feature_names).encode_one(record))[0]
        assert abs(body["probability"] - float(expected)) < 1e-6
    assert model_rows == [1, 1]  # the disconnected request never reached the model


@pytest.mark.slow
def test_disconnects_over_http_cost_no_model_call_and_free_their_slots(
    slow_model_tag: str, records, expected_probability, tmp_path: Path
) -> None:
    """Clients that time out while queued behind a slow model call: never scored, counted as
    499 by the server, nothing of them lingers (BentoML's timeout middleware would otherwise wait
    the full 60 s request timeout for a response that never starts), and a full set of new
    requests is admitted and answered right after."""
    env = {
        "CREDIT_RISK_MODEL_TAG": slow_model_tag,
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_OFFLOAD_MODEL_CALLS": "true",  # every call queues: the metrics count them all
        "CREDIT_RISK_BULK_ENGINE": "onnx",
        "CREDIT_RISK_MAX_CONCURRENCY": "8",
        "CREDIT_RISK_MAX_QUEUE_DELAY_MS": "60000",
        "CREDIT_RISK_REQUEST_TIMEOUT_S": "60",
    }
    impatient = 5
    with served(env, log_path=tmp_path / "serve.log") as server:

        async def scenario() -> tuple[
            list[httpx.Response], list[BaseException], list[httpx.Response]
        ]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                # The slow model call of records[0] starts; the next requests queue behind it.
                first = asyncio.ensure_future(client.post("/classify", json=records[0]))
                await asyncio.sleep(0.15)
                async with httpx.AsyncClient(base_url=server.url, timeout=0.4) as hasty:
                    gone = await asyncio.gather(
                        *(
                            hasty.post("/classify", json=records[i])
                            for i in range(1, 1 + impatient)
                        ),
                        return_exceptions=True,
                    )
                kept = asyncio.ensure_future(client.post("/classify", json=records[10]))
                answered = [await first, await kept]
                # All 8 slots must be free again: 8 at once are admitted and answered.
                more = await asyncio.gather(
                    *(client.post("/classify", json=records[20 + i]) for i in range(8))
                )
                return answered, gone, [*answered, *more]  # type: ignore[return-value]

        _, gone, all_answered = asyncio.run(scenario())

        def written(text: str) -> bool:  # what the assertions below expect, once flushed
            rows = metric_total(text, "credit_risk_batch_rows_sum")
            closed = metric_total(text, "bentoml_service_request_total", http_response_code="499")
            return rows >= 10 and closed >= impatient

        metrics = scrape_until(server.url, written)
    assert all(isinstance(error, httpx.TimeoutException) for error in gone), gone
    picks = [0, 10, *range(20, 28)]
    assert [a.status_code for a in all_answered] == [200] * len(picks), [
        a.text for a in all_answered
    ]
    got = [a.json()["probability"] for a in all_answered]
    np.testing.assert_allclose(got, expected_probability[picks], atol=1e-6)
    # Every scored row belongs to a request that got its answer: the 5 that left cost nothing.
    assert metric_total(metrics, "credit_risk_batch_rows_sum") == len(picks)
    lingering = metric_total(metrics, "bentoml_service_request_in_progress", endpoint="/classify")
    assert lingering == 0, metrics
    closed = metric_total(metrics, "bentoml_service_request_total", http_response_code="499")
    assert closed == impatient, metrics
    print(f"\ndisconnects over HTTP: {impatient} clients timed out while queued -> 499, 0 model rows; "
          f"{len(picks)} answered, {len(picks)} rows scored")  # fmt: skip


# -- when watching starts, in virtual time (tests/virtual_time.py) --------------------------

INTERVAL_S = 0.005


async def _answered_after(seconds: float) -> bytes:
    await asyncio.sleep(seconds)
    return b"{}"


class _Client:
    """A client's side of one request: `receive()` (after the body) waits for it to leave."""

    def __init__(self) -> None:
        self.watched_at: list[float] = []  # when the server started waiting on receive()
        self.left = asyncio.Event()

    async def receive(self) -> Message:
        self.watched_at.append(vt_loop().time())
        await self.left.wait()
        return {"type": "http.disconnect"}


def test_requests_answered_within_an_interval_are_never_watched() -> None:
    async def main() -> tuple[list[bytes], list[list[float]], int]:
        watch = DisconnectWatch(INTERVAL_S)
        clients = [_Client() for _ in range(3)]
        answers = [
            await watch.guard(_answer_now(), clients[0].receive),  # direct path: no timer
            await watch.guard(_answered_after(0), clients[1].receive),  # the next tick
            await watch.guard(_answered_after(INTERVAL_S * 0.9), clients[2].receive),
        ]
        await asyncio.sleep(INTERVAL_S * 10)
        return answers, [c.watched_at for c in clients], vt_loop().timers_of(watch)

    answers, watched, sweeps = vt_run(main())
    assert answers == [b"{}"] * 3
    assert watched == [[], [], []]
    assert sweeps <= 2  # one sweep finds nothing still waiting, and stops


def test_a_waiting_request_is_watched_and_its_client_leaving_cancels_it() -> None:
    async def main() -> tuple[list[float], float, float, bool]:
        watch = DisconnectWatch(INTERVAL_S)
        client = _Client()
        started = vt_loop().time()
        request = asyncio.ensure_future(watch.guard(_answered_after(3600), client.receive))
        await asyncio.sleep(INTERVAL_S * 3)
        watched = [at - started for at in client.watched_at]
        client.left.set()
        try:
            await request
            gone = False
        except ClientGone:
            gone = True
        return watched, vt_loop().time() - started, INTERVAL_S, gone

    watched, elapsed, interval, gone = vt_run(main())
    assert len(watched) == 1 and interval <= watched[0] <= 2 * interval  # after 1-2 intervals
    assert gone and elapsed < 1  # cancelled when the client left, not answered an hour later


# -- the cost on the hot path ----------------------------------------------------------------


class _Connection:
    """Like uvicorn's request cycle once the body is read: receive() waits for a disconnect."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def receive(self) -> Message:
        await self.closed.wait()
        return {"type": "http.disconnect"}


async def _task_per_request(
    work: Awaitable[bytes], receive: Callable[[], Awaitable[Message]]
) -> bytes:
    """The obvious design, for comparison: a watcher task for every request."""
    task = asyncio.current_task()
    assert task is not None

    def on_message(watcher: asyncio.Future[Message]) -> None:
        if not watcher.cancelled() and watcher.result()["type"] == "http.disconnect":
            task.cancel()

    watcher = asyncio.ensure_future(receive())
    watcher.add_done_callback(on_message)
    try:
        return await work
    except asyncio.CancelledError:
        raise ClientGone from None
    finally:
        watcher.remove_done_callback(on_message)
        watcher.cancel()


async def _answer_now() -> bytes:
    return b"{}"  # the batcher's direct path: answered without suspending


async def _answer_next_tick() -> bytes:
    await asyncio.sleep(0)  # merged into the next tick's flush
    return b"{}"


Guard = Callable[[Awaitable[bytes], Callable[[], Awaitable[Message]]], Awaitable[bytes]] | None


async def _cpu_per_request(guard: Guard, work: Callable[[], Awaitable[bytes]]) -> float:
    """Process CPU time per request (immune to other processes' load), 16 concurrent requests
    per loop tick, paced at ~20k requests/s."""

    async def one() -> bytes:
        if guard is None:
            return await work()
        return await guard(work(), _Connection().receive)

    n, width = 4000, 16
    started = time.process_time()
    for _ in range(n // width):
        await asyncio.gather(*(one() for _ in range(width)))
        await asyncio.sleep(0.0005)
    return (time.process_time() - started) / n


def test_disconnect_watch_costs_little_per_request() -> None:
    """Micro-benchmark with the API workers' GC settings (frozen start-up heap, high thresholds)."""
    guards: dict[str, Guard] = {
        "none": None,
        "task per request": _task_per_request,
        "DisconnectWatch": DisconnectWatch().guard,
    }
    best: dict[tuple[str, str], float] = {}

    async def main() -> None:
        for work in (_answer_now, _answer_next_tick):
            for _ in range(3):  # interleaved rounds, best of each: noise only ever adds time
                for name, guard in guards.items():
                    cost = await _cpu_per_request(guard, work)
                    key = (work.__name__, name)
                    best[key] = min(best.get(key, cost), cost)

    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        uvloop.run(main())
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    added = {key: (cost - best[(key[0], "none")]) * 1e6 for key, cost in best.items()}
    print("\nadded CPU per request (µs): " + ", ".join(f"{w} / {g}: {us:.1f}" for (w, g), us in added.items() if g != "none"))  # fmt: skip
    for work in ("_answer_now", "_answer_next_tick"):
        assert added[(work, "DisconnectWatch")] < 20  # generous: a busy machine only adds noise
