"""The API-key layer in process, in a worker's real stack (request ids, keys, front door)."""

import asyncio
import logging
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.types import Message

from service.metrics import MetricsBuffer
from service.settings import ServiceSettings
from service.wiring import Worker, WorkerApp
from tests.contract_cases import GOOD
from tests.inprocess import app_for_worker, client_for_app
from tests.security.conftest import PARTNER_KEY, WEBFORM_KEY


def _stack(worker: Worker, key_file: Path | None, ops_routes: str = "keyed") -> WorkerApp:
    settings = ServiceSettings(
        model_tag=worker.settings.model_tag,
        drain_delay_s=0,
        api_keys_file=key_file,
        ops_routes=ops_routes,  # type: ignore[arg-type]
    )
    return app_for_worker(worker, settings)


def _calls(stack: WorkerApp, *requests: tuple[str, str, dict[str, str]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with client_for_app(stack.app) as client:
            return [
                await client.request(
                    method, path, headers=headers, json=GOOD if method == "POST" else None
                )
                for method, path, headers in requests
            ]

    return asyncio.run(go())


def test_a_request_without_a_valid_key_gets_401_in_the_error_shape(
    worker: Worker, key_file: Path
) -> None:
    missing, wrong, other_scheme = _calls(
        _stack(worker, key_file),
        ("POST", "/classify", {}),
        ("POST", "/classify", {"authorization": "Bearer partner-key-0123456789abcdeX"}),
        ("POST", "/classify", {"authorization": f"Basic {PARTNER_KEY}"}),
    )
    for answer in (missing, wrong, other_scheme):
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["www-authenticate"].startswith('Bearer realm="credit-risk"')
        body = answer.json()
        assert set(body) == {"error", "details", "request_id"}
        assert body["request_id"] == answer.headers["x-request-id"]
    assert "Authorization: Bearer <key>" in missing.json()["error"]
    assert wrong.json()["error"] == "the API key is not valid"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert 'error="invalid_token"' not in other_scheme.headers["www-authenticate"]


def test_a_listed_key_is_accepted_as_bearer_token_or_x_api_key(
    worker: Worker, key_file: Path
) -> None:
    answers = _calls(
        _stack(worker, key_file),
        ("POST", "/classify", {"authorization": f"Bearer {PARTNER_KEY}"}),
        ("POST", "/classify", {"authorization": f"bearer {WEBFORM_KEY}"}),
        ("POST", "/classify", {"x-api-key": WEBFORM_KEY}),
        ("POST", "/classify_batch", {"x-api-key": PARTNER_KEY}),
    )
    assert [a.status_code for a in answers] == [200, 200, 200, 422]  # 422: a batch is an array
    assert answers[0].json()["status"] in ("APPROVED", "MAYBE", "DECLINED")


def test_probes_are_open_and_ops_routes_follow_the_setting(worker: Worker, key_file: Path) -> None:
    requests = [("GET", path, {}) for path in ("/livez", "/readyz", "/healthz", "/v2/health/ready")]
    ops = [
        ("GET", path, {})
        for path in ("/metrics", "/info", "/", "/docs.json", "/static_content/index.css")
    ]
    others = [("GET", "/v2/models/credit_risk", {}), ("POST", "/explain", {}), ("GET", "/nope", {})]
    preflight = [
        (
            "OPTIONS",
            "/classify",
            {"origin": "https://form.example", "access-control-request-method": "POST"},
        )
    ]
    keyed = _calls(_stack(worker, key_file), *requests, *ops, *others, *preflight)
    probes, ops_keyed = keyed[:4], keyed[4:9]
    assert all(a.status_code != 401 for a in probes), [a.status_code for a in probes]
    assert all(a.status_code == 401 for a in ops_keyed), [a.status_code for a in ops_keyed]
    assert all(a.status_code == 401 for a in keyed[9:12])  # a route not listed as open is keyed
    assert keyed[12].status_code != 401  # browsers send CORS preflights without credentials

    opened = _calls(_stack(worker, key_file, ops_routes="open"), *ops, ("POST", "/classify", {}))
    assert opened[1].status_code == 200 and opened[1].json()["model"] == worker.scorer.model_tag
    assert all(a.status_code != 401 for a in opened[:5]), [a.status_code for a in opened]
    assert opened[5].status_code == 401


def test_metrics_are_for_the_metrics_clients(
    worker: Worker, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServiceSettings(
        model_tag=worker.settings.model_tag,
        drain_delay_s=0,
        api_keys_file=key_file,
        metrics_clients="webform, prometheus",
    )
    with caplog.at_level(logging.WARNING, logger="credit_risk"):
        stack = app_for_worker(worker, settings)
    assert "does not have: prometheus" in caplog.text  # a name the key file lacks
    partner, webform, info = _calls(
        stack,
        ("GET", "/metrics", {"x-api-key": PARTNER_KEY}),
        ("GET", "/metrics", {"x-api-key": WEBFORM_KEY}),
        ("GET", "/info", {"x-api-key": PARTNER_KEY}),
    )
    assert partner.status_code == 403 and partner.headers["connection"] == "close"
    assert partner.json()["request_id"] == partner.headers["x-request-id"]
    assert webform.status_code not in (401, 403)  # passed on (no BentoML app in process: 404)
    assert info.status_code == 200


def test_keys_are_off_without_a_key_file(worker: Worker) -> None:
    stack = _stack(worker, None)
    assert stack.api_keys is None
    (answer,) = _calls(stack, ("POST", "/classify", {}))
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"]


def test_the_refusal_is_decided_before_the_body_is_read(worker: Worker, key_file: Path) -> None:
    """A bad key is answered from the headers: the body is never asked for."""
    stack = _stack(worker, key_file)
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/classify_bulk", "raw_path": b"/classify_bulk",
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
        "headers": [(b"content-type", b"text/csv"), (b"content-length", b"100000000"),
                    (b"x-api-key", b"a-guess-0123456789abcdef")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 3000),
    }  # fmt: skip
    asyncio.run(stack.app(scope, receive, send))
    start, body = sent
    assert start["status"] == 401
    headers = dict(start["headers"])
    assert int(headers[b"content-length"]) == len(body["body"])
    assert orjson.loads(body["body"])["request_id"] == headers[b"x-request-id"].decode()


def test_requests_are_counted_by_client_name(worker: Worker, key_file: Path) -> None:
    stack = _stack(worker, key_file)
    assert stack.api_keys is not None
    buffer = MetricsBuffer()
    stack.api_keys.count_clients(buffer, frozenset(stack.door.routes.routes))

    async def go() -> None:
        async with client_for_app(stack.app) as client:
            await client.post("/classify", json=GOOD, headers={"x-api-key": PARTNER_KEY})
            await client.post("/classify", json=GOOD, headers={"x-api-key": PARTNER_KEY})
            await client.post("/classify", json=[GOOD], headers={"x-api-key": WEBFORM_KEY})
            await client.post("/classify", json=GOOD, headers={"x-api-key": "not-a-key-000000000"})
            await client.get("/random/path", headers={"x-api-key": WEBFORM_KEY})
            await client.get("/livez")  # open: not a client's request
            buffer.flush()

    asyncio.run(go())
    metrics = stack.api_keys.metrics
    assert metrics is not None
    counted = {
        labels: series._child._value.get()  # the prometheus child behind the buffered counter
        for labels, series in metrics._series.items()
    }
    assert counted == {
        ("partner", "/classify", 200): 2,
        ("webform", "/classify", 422): 1,
        ("-", "/classify", 401): 1,
        ("webform", "other", 404): 1,  # unknown paths share one label value
    }
    for labels in counted:
        assert PARTNER_KEY not in labels and WEBFORM_KEY not in labels


def test_counting_again_renames_paths_and_keeps_the_counts(worker: Worker, key_file: Path) -> None:
    """A models switch changes the versioned V2 paths: counting again names the new ones, on
    the same counter (the series counted before the change stay)."""
    stack = _stack(worker, key_file)
    assert stack.api_keys is not None
    buffer = MetricsBuffer()
    stack.api_keys.count_clients(buffer, frozenset(stack.door.routes.routes))
    metrics = stack.api_keys.metrics
    headers = {"x-api-key": WEBFORM_KEY}

    async def go() -> None:
        async with client_for_app(stack.app) as client:
            await client.get("/random/path", headers=headers)
            assert stack.api_keys is not None
            stack.api_keys.count_clients(buffer, frozenset({"/random/path"}))
            await client.get("/random/path", headers=headers)
            buffer.flush()

    asyncio.run(go())
    assert stack.api_keys.metrics is metrics and metrics is not None
    assert set(metrics._series) == {("webform", "other", 404), ("webform", "/random/path", 404)}


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_a_key_is_never_echoed(worker: Worker, key_file: Path, header: str) -> None:
    guess = "guessed-key-abcdef0123456789"
    value = f"Bearer {guess}" if header == "authorization" else guess
    (answer,) = _calls(_stack(worker, key_file), ("POST", "/classify", {header: value}))
    assert answer.status_code == 401
    assert guess not in answer.text and all(guess not in v for v in answer.headers.values())
