"""BentoML's request timeout and max concurrency on the routes the front door answers: 504 and
429 (with Retry-After) in the one error shape, in process on virtual time and on real servers
(a bulk request whose scoring takes longer than the timeout, a body that never ends); the
door's access lines."""

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from harness.rawhttp import read_response
from service.errors import RequestError
from service.http.concurrency import ConcurrencyLimit, per_worker
from service.http.timeout import RequestDeadlines
from tests import virtual_time
from tests.contract_cases import GOOD

BULK_ROWS = 200_000


async def _forever() -> None:
    await asyncio.Event().wait()


def test_a_request_past_its_deadline_gets_504_within_a_tick() -> None:
    async def main() -> tuple[float, RequestError]:
        deadlines = RequestDeadlines(2.0, tick_s=0.1)
        loop = virtual_time.loop()
        started = loop.time()
        with pytest.raises(RequestError) as raised:
            await deadlines.run(_forever())
        return loop.time() - started, raised.value

    waited, error = virtual_time.run(main())
    assert 2.0 <= waited <= 2.1 + 1e-9
    assert error.status == 504 and "2 seconds" in error.message


def test_answers_within_the_deadline_leave_no_timer_behind() -> None:
    async def main() -> tuple[list[int], int]:
        deadlines = RequestDeadlines(1.0, tick_s=0.1)
        answers = [await deadlines.run(asyncio.sleep(0.01, result=i)) for i in range(200)]
        await asyncio.sleep(5)  # the sweep stops once nothing is in progress
        before = virtual_time.loop().timers_of(deadlines)
        await asyncio.sleep(5)
        return answers, virtual_time.loop().timers_of(deadlines) - before

    answers, later_timers = virtual_time.run(main())
    assert answers == list(range(200))
    assert later_timers == 0


def test_another_cancellation_is_not_a_timeout() -> None:
    async def main() -> None:
        deadlines = RequestDeadlines(10.0)
        task = asyncio.ensure_future(deadlines.run(_forever()))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    virtual_time.run(main())


def test_the_limit_refuses_one_more_with_429() -> None:
    limit = ConcurrencyLimit(per_worker(5, 2))  # 3 per worker, rounded up as BentoML does
    for _ in range(3):
        limit.enter()
    with pytest.raises(RequestError) as raised:
        limit.enter()
    assert raised.value.status == 429
    limit.leave()
    limit.enter()


# On real servers -------------------------------------------------------------------------


def _bulk_body() -> bytes:
    return orjson.dumps({name: [value] * BULK_ROWS for name, value in GOOD.items()})


def _stalled_bulk(port: int, body_bytes: int) -> socket.socket:
    """A bulk request whose head and part of whose body are sent; the rest never comes."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /classify_bulk HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"x-request-id: stalled\r\ncontent-length: {body_bytes}\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"age": [')
    return sock


def _is_error_shape(body: bytes, status_word: str) -> None:
    """The one error shape (service/errors.py), with the request id the server added."""
    error = orjson.loads(body)
    assert set(error) == {"error", "details", "request_id"}, error
    assert status_word in error["error"] and error["details"] == [], error


@pytest.fixture(scope="module")
def servers(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServedProcess]]:
    """`timeout` (0.1 s timeout), `limited` (one request at a time), and the same two with the
    door behind BentoML's middleware (`... public`: CREDIT_RISK_PRIVATE_HOOKS=off)."""
    logs = tmp_path_factory.mktemp("door-limits")
    base = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": "1"}
    timeout = {**base, "CREDIT_RISK_REQUEST_TIMEOUT_S": "0.1", "CREDIT_RISK_ACCESS_LOG": "true"}
    limited = {**base, "CREDIT_RISK_MAX_CONCURRENCY": "1"}
    public = {"CREDIT_RISK_PRIVATE_HOOKS": "off"}
    configs = {
        "timeout": timeout,
        "limited": limited,
        "timeout public": {**timeout, **public},
        "limited public": {**limited, **public},
    }
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(served(env, log_path=Path(logs) / f"{name} server.log"))
            for name, env in configs.items()
        }


MODES = pytest.mark.parametrize("mode", ["", " public"], ids=["hooks", "public"])


@MODES
def test_a_slow_bulk_request_gets_504_in_the_error_shape(
    servers: dict[str, ServedProcess], mode: str
) -> None:
    server = servers[f"timeout{mode}"]
    body = _bulk_body()
    answer = httpx.post(
        f"{server.url}/classify_bulk",
        content=body,
        headers={"content-type": "application/json", "x-request-id": "slow-bulk"},
        timeout=60,
    )
    assert answer.status_code == 504, answer.text[:200]
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"] == "slow-bulk"
    _is_error_shape(answer.content, "0.1 seconds")
    if mode:
        return  # the access line is BentoML's own there, in its own format
    line = "(scheme=http,method=POST,path=/classify_bulk) (status=504,"
    for _ in range(100):  # the worker's log line may reach the file a moment after the answer
        if line in server.log():
            break
        time.sleep(0.05)
    assert line in server.log(), "no access line (CREDIT_RISK_ACCESS_LOG=true)"


@MODES
def test_a_body_that_never_ends_gets_504(servers: dict[str, ServedProcess], mode: str) -> None:
    with _stalled_bulk(servers[f"timeout{mode}"].port, 1_000_000) as sock:
        answer = read_response(sock, timeout_s=20)
    assert answer is not None and answer.status == 504
    _is_error_shape(answer.body, "0.1 seconds")


@MODES
def test_one_request_more_than_max_concurrency_gets_429_with_retry_after(
    servers: dict[str, ServedProcess], mode: str
) -> None:
    server = servers[f"limited{mode}"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/classify", json=GOOD).status_code == 200
        with _stalled_bulk(server.port, 1_000_000):
            # The stalled request holds the worker's one slot once its head is read.
            for _ in range(200):
                refused = client.post("/classify", json=GOOD)
                if refused.status_code != 200:
                    break
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "1"
            _is_error_shape(refused.content, "too many requests")
        # Its client gone, the slot is free again.
        for _ in range(200):
            if client.post("/classify", json=GOOD).status_code == 200:
                break
        else:
            pytest.fail("the slot was not freed when the stalled client went")
