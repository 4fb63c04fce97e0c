"""Request ids in process: echoed or made, on every answer, in every error body and log line."""

import asyncio
import io
import logging

import httpx
import orjson
import pytest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from service.http.request_id import RequestIdMiddleware, RequestIds, error_with_id
from service.wiring import Worker
from tests.contract_cases import GOOD
from tests.inprocess import client_for, client_for_app, door_for_worker


def _get(app: RequestIdMiddleware, headers: dict[str, bytes] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client_for_app(app) as client:
            return await client.get("/", headers=headers)

    return asyncio.run(go())


def _answering(response: Response) -> RequestIdMiddleware:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, send)

    return RequestIdMiddleware(app)


@pytest.mark.parametrize("given", ["abc", "req-42.retry:1_A", "x" * 128])
def test_a_valid_incoming_id_is_echoed(given: str) -> None:
    answer = _get(_answering(PlainTextResponse("ok")), {"x-request-id": given.encode()})
    assert answer.headers["x-request-id"] == given


@pytest.mark.parametrize("given", ["x" * 129, "has space", "semi;colon", 'quote"d', "", "ü-latin1"])
def test_an_invalid_incoming_id_is_replaced(given: str) -> None:
    app = _answering(PlainTextResponse("ok"))
    answer = _get(app, {"x-request-id": given.encode("latin-1")})
    made = answer.headers["x-request-id"]
    assert made != given and made.startswith(app.ids.prefix + "-")


def test_made_ids_are_unique_within_and_across_workers() -> None:
    first, second = RequestIds(), RequestIds()
    made = [first.new() for _ in range(10_000)] + [second.new() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert first.prefix != second.prefix


def test_every_front_door_error_body_carries_the_id(worker: Worker) -> None:
    async def go() -> list[httpx.Response]:
        async with client_for(door_for_worker(worker)) as client:
            return [
                await client.post("/classify", json={**GOOD, "age": 12}),  # 422
                await client.post(
                    "/classify", content=b"{", headers={"x-request-id": "mine-1"}
                ),  # 400
                await client.get("/classify"),  # 405
                await client.post("/classify", json=GOOD),  # 200: the header only
            ]

    bad_age, malformed, wrong_method, good = asyncio.run(go())
    for answer in (bad_age, malformed, wrong_method):
        body = answer.json()
        assert body["request_id"] == answer.headers["x-request-id"], body
        assert int(answer.headers["content-length"]) == len(answer.content)
        assert body["error"] and "details" in body
    assert malformed.json()["request_id"] == "mine-1"
    assert "request_id" not in good.json() and good.headers["x-request-id"]


def test_plain_text_errors_become_the_json_error_shape() -> None:
    """BentoML answers its own 404 and 405 in plain text."""
    answer = _get(_answering(PlainTextResponse("Not Found", status_code=404)))
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "Not Found", "details": [], "request_id": answer.headers["x-request-id"],
    }  # fmt: skip


def test_other_json_error_bodies_get_the_id_spliced_in() -> None:
    answer = _get(_answering(JSONResponse({"error": "timed out"}, status_code=504)))
    assert answer.json() == {"error": "timed out", "request_id": answer.headers["x-request-id"]}
    start = {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", b"application/json")],
    }
    assert orjson.loads(error_with_id(start, b"{}", "r1")) == {"request_id": "r1"}
    assert start["headers"][-1] == (b"content-length", b"19")
    assert error_with_id(start, b"[1, 2]", "r1") == b"[1, 2]"  # not an object: left alone
    image = {**start, "headers": [(b"content-type", b"image/png")]}
    assert error_with_id(image, b"\x89PNG", "r1") == b"\x89PNG"
    assert image["headers"] == [(b"content-type", b"image/png")]


def test_log_lines_about_a_request_name_it(scrubbed_logs: io.StringIO) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logging.getLogger("credit_risk.test").warning("scoring %d rows", 3)
        await PlainTextResponse("ok")(scope, receive, send)

    answer = _get(RequestIdMiddleware(app), {"x-request-id": b"trace-me-7"})
    assert answer.headers["x-request-id"] == "trace-me-7"
    logging.getLogger("credit_risk.test").warning("between requests")
    assert scrubbed_logs.getvalue().splitlines() == [
        "WARNING credit_risk.test scoring 3 rows [request_id=trace-me-7]",
        "WARNING credit_risk.test between requests",
    ]
