"""The front door in process (no server): routes, the one error contract, admission, draining."""

import asyncio
import gc
import types
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest

from export.pipeline import ExportSummary
from service.http.front_door import FrontDoor
from service.settings import ServiceSettings
from service.wiring import Worker, build_worker
from tests.contract_cases import CASES, GOOD, JSON, Case
from tests.inprocess import app_for_worker, client_for, door_for_worker


@pytest.fixture(scope="module")
def worker(exported: ExportSummary) -> Iterator[Worker]:
    settings = ServiceSettings(model_tag=exported.onnx_tag, drain_delay_s=0)
    built = build_worker(settings)
    yield built
    built.scorer.close()


def _call(door: FrontDoor, method: str, path: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client_for(door) as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_classify_answers_like_the_engine(worker: Worker, records, expected_probability) -> None:
    door = door_for_worker(worker)
    answer = _call(door, "POST", "/classify", json=records[7])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["probability"] == pytest.approx(expected_probability[7], abs=1e-6)
    assert body["model"] == worker.scorer.model_tag
    batch = _call(door, "POST", "/classify_batch", json=records[:50]).json()
    np.testing.assert_allclose(
        [d["probability"] for d in batch], expected_probability[:50], atol=1e-6
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_requests_get_one_error_shape(worker: Worker, case: Case) -> None:
    answer = _call(
        door_for_worker(worker), case.method, case.path, content=case.body, headers=case.headers
    )
    assert answer.status_code == case.status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "details", "request_id"}
    assert body["request_id"] == answer.headers["x-request-id"]
    assert case.names in body["error"], body
    if case.status == 405:
        assert answer.headers["allow"] in ("POST", "GET")
    if case.status == 422:
        assert body["details"], body


def test_refusals_under_overload_say_when_to_retry(worker: Worker) -> None:
    door = door_for_worker(worker)
    lag = door.admission.lag
    assert lag is not None
    lag.state.fraction = 0.0  # as if the loop had lagged for long: everything is refused
    lag.state.lag_s = 0.4
    answer = _call(door, "POST", "/classify", json=GOOD)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert "overloaded" in answer.json()["error"]


def test_bulk_bytes_in_flight_are_bounded(worker: Worker) -> None:
    door = door_for_worker(worker)
    door.bulk_bytes_in_flight = door.limits.max_bulk_bytes_in_flight  # another bulk in progress
    columns = {k: [v] * 10 for k, v in GOOD.items()}
    answer = _call(door, "POST", "/classify_bulk", json=columns)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    door.bulk_bytes_in_flight = 0
    answer = _call(door, "POST", "/classify_bulk", json=columns)
    assert answer.status_code == 200 and len(answer.json()["probability"]) == 10


def test_draining_answers_and_closes_connections(worker: Worker) -> None:
    door = door_for_worker(worker)
    assert door.ready
    door.drain.draining = True
    answer = _call(door, "POST", "/classify", json=GOOD)
    assert answer.status_code == 200
    assert answer.headers["connection"] == "close"
    assert not door.ready


def test_other_routes_and_methods_go_to_the_app_behind(worker: Worker) -> None:
    seen: list[tuple[str, str]] = []

    async def behind(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    door = door_for_worker(worker).wrap(behind)
    assert _call(door, "GET", "/readyz").status_code == 204
    assert _call(door, "OPTIONS", "/classify").status_code == 204  # CORS preflight
    assert seen == [("GET", "/readyz"), ("OPTIONS", "/classify")]


def test_info_describes_the_served_model(worker: Worker) -> None:
    info = _call(door_for_worker(worker), "GET", "/info").json()
    assert info["model"] == worker.scorer.model_tag
    assert info["limits"]["max_batch_items"] == 1000


def test_arrow_answers_when_asked(worker: Worker, records, expected_probability) -> None:
    import pyarrow as pa

    columns = {name: [r[name] for r in records[:300]] for name in GOOD}
    answer = _call(
        door_for_worker(worker),
        "POST",
        "/classify_bulk",
        content=orjson.dumps(columns),
        headers={**JSON, "accept": "application/vnd.apache.arrow.stream"},
    )
    assert answer.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(answer.content).read_all()
    np.testing.assert_allclose(
        table.column("probability").to_numpy(), expected_probability[:300], atol=1e-6
    )


def test_a_model_without_training_distributions_scores_but_cannot_explain(
    exported: ExportSummary,
) -> None:
    """Tags exported before the training distributions were stored still serve (a rollback)."""
    import shutil
    from pathlib import Path

    import bentoml

    from features.distributions import METADATA_KEY

    good = bentoml.models.get(exported.onnx_tag)
    metadata = {k: v for k, v in good.info.metadata.items() if k != METADATA_KEY}
    with bentoml.models.create("credit_risk_onnx_old", metadata=metadata) as old:
        shutil.copy(Path(good.path) / "model.onnx", old.path_of("model.onnx"))
    worker = build_worker(ServiceSettings(model_tag=str(old.tag)))
    door = door_for_worker(worker)
    assert _call(door, "POST", "/classify", json=GOOD).status_code == 200
    for path, payload in (("/explain", GOOD), ("/explain_batch", [GOOD])):
        answer = _call(door, "POST", path, json=payload)
        assert answer.status_code == 501 and "export it again" in answer.json()["error"]
    columns = {k: [v] for k, v in GOOD.items()}
    assert _call(door, "POST", "/classify_bulk", json=columns).status_code == 200
    assert _call(door, "POST", "/classify_bulk?reasons=2", json=columns).status_code == 501
    worker.scorer.close()


def test_error_answers_leave_no_cyclic_garbage(worker: Worker) -> None:
    """An error's traceback holds the frames it went through: kept past the answer, each refused
    request would leave a reference cycle for the GC to find (pauses under floods of 4xx). The
    garbage is read, not only counted: a thread left by another test in this process (a
    recorder's writer, say) may make garbage of its own meanwhile."""
    app = app_for_worker(worker).app

    async def receive_body(body: bytes) -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def ignore(message: object) -> None:
        return None

    async def serve_cases() -> list[str]:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage
        try:
            for case in CASES * 3:
                path, _, query = case.path.partition("?")
                scope = {
                    "type": "http", "method": case.method, "path": path,
                    "query_string": query.encode(),
                    "headers": [(k.encode(), v.encode()) for k, v in case.headers.items()],
                }  # fmt: skip
                await app(scope, lambda case=case: receive_body(case.body), ignore)
            gc.collect()
            return [
                f"{item.f_code.co_filename}:{item.f_code.co_name}"
                for item in gc.garbage
                if isinstance(item, types.FrameType) and _on_the_request_path(item)
            ]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()

    assert asyncio.run(serve_cases()) == []


def _on_the_request_path(frame: types.FrameType) -> bool:
    """A frame of the code an HTTP request runs through: the front door and what it calls."""
    parts = ("/service/http/", "/service/scoring.py", "/service/errors.py", "/features/")
    return any(part in frame.f_code.co_filename for part in parts)
