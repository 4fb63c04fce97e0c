"""Real 503s with Retry-After from a real server: score_table waits and still answers every row;
with no retries left it raises OverloadedError.

The server runs one worker whose bulk byte budget (CREDIT_RISK_MAX_BULK_BYTES_IN_FLIGHT) is the
minimum, so while one bulk request is in progress every other one is refused with 503 before its
body is read. The test holds such a request open itself (headers and one byte of its body sent,
the rest held back), so the refusals do not depend on timing."""

import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from client import CreditRiskClient, OverloadedError, RetryPolicy
from client.wire import ARROW_STREAM, request_body
from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from tests.client.conftest import CHUNK_ROWS, Applicants
from tests.client.test_client import _check_scored

HELD_BYTES = 4_096

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def strict_server(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_MAX_BULK_BYTES_IN_FLIGHT": "1024",
    }
    log = tmp_path_factory.mktemp("strict-server") / "serve.log"
    with served(env, log_path=log, extra_args=("--production",)) as process:
        yield process


@contextmanager
def bulk_request_in_progress(server: ServedProcess, probe: bytes) -> Iterator[None]:
    """A bulk request whose body has not all arrived, holding the worker's bulk budget, until
    the block ends; then the rest of its (junk) body is sent and it is answered 400."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as held:
        head = (
            "POST /classify_bulk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: {ARROW_STREAM}\r\nContent-Length: {HELD_BYTES}\r\n\r\n"
        )
        held.sendall(head.encode() + b"x")
        _wait_for_503(server, probe)
        try:
            yield
        finally:
            held.sendall(b"x" * (HELD_BYTES - 1))
            status_line = b""
            while b"\r\n" not in status_line and (part := held.recv(256)):
                status_line += part
            assert status_line.startswith(b"HTTP/1.1 400"), status_line  # answered, not lost


def _wait_for_503(server: ServedProcess, probe: bytes) -> None:
    """Once the held request has reached the worker, a small bulk request gets 503."""
    headers = {"content-type": ARROW_STREAM}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(200):
            answer = http.post("/classify_bulk", content=probe, headers=headers)
            if answer.status_code == 503:
                assert answer.headers["retry-after"] == "1"
                return
            threading.Event().wait(0.05)
    raise AssertionError("the held bulk request never blocked the worker")


class _Retries(logging.Handler):
    """Counts the client's retry-after-503 log lines; `first` is set at the first."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.first = threading.Event()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "503 from the server" in record.getMessage():
            self.count += 1
            self.first.set()


@contextmanager
def client_retries() -> Iterator[_Retries]:
    logger = logging.getLogger("client")
    handler, level = _Retries(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_score_table_waits_out_503s_and_answers_every_row(
    strict_server: ServedProcess, applicants: Applicants, exported: ExportSummary
) -> None:
    probe = request_body(applicants.table.slice(0, 10))
    with (
        client_retries() as retries,
        CreditRiskClient(strict_server.url) as risk,
        ThreadPoolExecutor(1) as background,
    ):
        with bulk_request_in_progress(strict_server, probe):
            job = background.submit(
                risk.score_table, applicants.table, chunk_rows=CHUNK_ROWS, concurrency=2
            )
            assert retries.first.wait(60), "the client was never refused"
        result = job.result(timeout=300)
    assert retries.count >= 1
    _check_scored(result, applicants, exported.onnx_tag)


def test_overloaded_error_when_no_retries_are_left(
    strict_server: ServedProcess, applicants: Applicants
) -> None:
    probe = request_body(applicants.table.slice(0, 10))
    policy = RetryPolicy(max_refusals=1)
    with (
        CreditRiskClient(strict_server.url, retry=policy) as risk,
        bulk_request_in_progress(strict_server, probe),
        pytest.raises(OverloadedError) as raised,
    ):
        risk.score_table(applicants.table.slice(0, 1_000))
    assert raised.value.status == 503
    assert raised.value.error  # the server's own reason, from its JSON error
