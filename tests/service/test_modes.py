"""Every selectable configuration answers correctly: batching designs, engines, route styles."""

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import numpy as np
import pyarrow as pa
import pytest

from export.pipeline import ExportSummary
from harness.process import ServedProcess, served, stop_all
from service.arrow_io import table_as_ipc
from service.http.media import ARROW_STREAM

pytestmark = pytest.mark.slow  # starts real server processes

MODES = {
    "bentoml-batching": {"CREDIT_RISK_BATCHING": "bentoml"},
    "unbatched": {"CREDIT_RISK_BATCHING": "none"},
    "xgboost-adaptive-offload": {"CREDIT_RISK_ENGINE": "xgboost", "CREDIT_RISK_OFFLOAD_MODEL_CALLS": "true"},
}  # fmt: skip


@pytest.fixture(scope="module")
def mode_servers(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServedProcess]]:
    """One server per mode, all started at once (independent processes) and kept for the
    module."""

    def start(name: str) -> ServedProcess:
        env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, **MODES[name]}
        log = tmp_path_factory.mktemp(name) / "serve.log"
        return stack.enter_context(served(env, log_path=log))

    with ExitStack() as stack, ThreadPoolExecutor(len(MODES)) as pool:
        servers = dict(zip(MODES, pool.map(start, MODES), strict=True))
        yield servers
        stop_all([server.process for server in servers.values()])  # together, not in turn


@pytest.fixture(params=list(MODES))
def mode_server(
    request: pytest.FixtureRequest, mode_servers: dict[str, ServedProcess]
) -> tuple[str, ServedProcess]:
    return request.param, mode_servers[request.param]


async def _post_honouring_retry_after(
    client: httpx.AsyncClient, record: dict[str, object]
) -> httpx.Response:
    """A 503 is a legitimate overload answer (BentoML's dispatcher sheds load on a busy machine);
    a well-behaved client retries it, and the answer it finally gets must be right."""
    for _ in range(5):
        answer = await client.post("/classify", json=record)
        if answer.status_code != 503:
            return answer
        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
    return answer


async def _concurrent(url: str, records: list[dict[str, object]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=100)
    ) as client:
        return await asyncio.gather(*(_post_honouring_retry_after(client, r) for r in records))


def test_mode_answers_match_in_process_predictions(
    mode_server, records, expected_probability
) -> None:
    name, server = mode_server
    tolerance = 1e-5 if "xgboost" in name else 1e-6  # native vs ONNX: the export's parity bound
    picks = list(range(0, 2000, 13))
    answers = asyncio.run(_concurrent(server.url, [records[i] for i in picks]))
    assert all(a.status_code == 200 for a in answers), [
        a.text for a in answers if a.status_code != 200
    ][:2]
    got = [a.json()["probability"] for a in answers]
    np.testing.assert_allclose(got, expected_probability[picks], atol=tolerance)

    batch = httpx.post(f"{server.url}/classify_batch", json=records[:300], timeout=60)
    assert batch.status_code == 200, batch.text
    np.testing.assert_allclose(
        [d["probability"] for d in batch.json()], expected_probability[:300], atol=tolerance
    )

    bulk = httpx.post(
        f"{server.url}/classify_bulk",
        json={k: [r[k] for r in records[:3000]] for k in records[0]},
        timeout=60,
    )
    assert bulk.status_code == 200, bulk.text
    np.testing.assert_allclose(bulk.json()["probability"], expected_probability[:3000], atol=1e-5)
    table = pa.table({k: [r[k] for r in records[:3000]] for k in records[0]})
    arrow = httpx.post(
        f"{server.url}/classify_bulk",
        content=table_as_ipc(table),
        headers={"content-type": ARROW_STREAM},
        timeout=60,
    )
    assert arrow.status_code == 200, arrow.text
    np.testing.assert_allclose(arrow.json()["probability"], expected_probability[:3000], atol=1e-5)


def test_mode_refuses_bad_input_naming_the_field(mode_server, records) -> None:
    _, server = mode_server
    answer = httpx.post(f"{server.url}/classify", json={**records[0], "age": -3}, timeout=30)
    assert 400 <= answer.status_code < 500
    assert "age" in answer.text
    assert httpx.post(f"{server.url}/classify", json=records[0], timeout=30).status_code == 200
