"""One contract: a real server answers every bad request exactly as the front door does in
process, byte for byte (status, body, content type, Allow, Retry-After, the echoed request id),
on every route; with its private hooks and without them (the door behind BentoML's public
middleware API, as on an untested BentoML or uvicorn)."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from service.settings import ServiceSettings
from service.wiring import Worker, build_worker
from tests.contract_cases import CASES
from tests.inprocess import client_for, door_for_worker

pytestmark = pytest.mark.slow
COMPARED_HEADERS = ("content-type", "allow", "retry-after", "x-request-id")


def _headers(index: int, case_headers: dict[str, str]) -> dict[str, str]:
    """The case's headers and a request id of its own (echoed in the answer and its body)."""
    return {**case_headers, "x-request-id": f"contract-{index}"}


@pytest.fixture(scope="module")
def worker(exported: ExportSummary) -> Iterator[Worker]:
    built = build_worker(ServiceSettings(model_tag=exported.onnx_tag))
    yield built
    built.scorer.close()


def _summary(answer: httpx.Response) -> tuple[int, bytes, dict[str, str | None]]:
    return (
        answer.status_code,
        answer.content,
        {name: answer.headers.get(name) for name in COMPARED_HEADERS},
    )


@pytest.fixture(scope="module")
def public_server(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """The server without private hooks: the front door behind BentoML's public middleware API
    (what a BentoML or uvicorn other than the tested ones gets)."""
    log = tmp_path_factory.mktemp("public") / "serve.log"
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "2",
        "CREDIT_RISK_PRIVATE_HOOKS": "off",
    }
    with served(env, log_path=log, extra_args=("--production",)) as process:
        yield process


@pytest.mark.parametrize("mode", ["private hooks", "public API only"])
def test_server_answers_bad_requests_like_the_front_door(
    mode: str, request: pytest.FixtureRequest, worker: Worker
) -> None:
    server: ServedProcess = request.getfixturevalue(
        "server" if mode == "private hooks" else "public_server"
    )

    async def in_process() -> list[httpx.Response]:
        async with client_for(door_for_worker(worker)) as client:
            return [
                await client.request(
                    c.method, c.path, content=c.body, headers=_headers(i, c.headers)
                )
                for i, c in enumerate(CASES)
            ]

    expected = asyncio.run(in_process())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        got = [
            client.request(c.method, c.path, content=c.body, headers=_headers(i, c.headers))
            for i, c in enumerate(CASES)
        ]
    for case, want, have in zip(CASES, expected, got, strict=True):
        assert want.status_code == case.status, (case.name, want.text)
        assert _summary(have) == _summary(want), case.name


def test_without_private_hooks_the_server_says_so_once(public_server: ServedProcess) -> None:
    lines = [line for line in public_server.log().splitlines() if "without private hooks" in line]
    assert len(lines) == 1, lines
    assert "CREDIT_RISK_PRIVATE_HOOKS=off" in lines[0]
