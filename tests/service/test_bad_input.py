"""Bad input on a real server: refused, and the server keeps serving. (Every refusal's exact
answer is checked in process in test_front_door.py and compared with a real server's in
test_contract.py; these are the cases only a real server shows.)"""

import asyncio

import httpx
import pytest

from harness.process import ServedProcess
from service.settings import ServiceSettings
from service.wiring import build_worker
from tests.contract_cases import GOOD
from tests.inprocess import client_for, door_for_worker


@pytest.mark.slow
def test_server_keeps_serving_after_bad_input(server: ServedProcess) -> None:
    for payload in (b"\xff\xfe", b"null", b"{}", b"[[[[[[[[[[]]]]]]]]]]"):
        answer = httpx.post(
            f"{server.url}/classify",
            content=payload,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert 400 <= answer.status_code < 500, (payload, answer.text)
    answer = httpx.post(f"{server.url}/classify", json=GOOD, timeout=30)
    assert answer.status_code == 200


def test_bulk_over_row_limit_is_413(exported) -> None:
    worker = build_worker(ServiceSettings(model_tag=exported.onnx_tag, max_bulk_rows=1000))
    columns = {k: [v] * 1001 for k, v in GOOD.items()}

    async def post() -> httpx.Response:
        async with client_for(door_for_worker(worker)) as client:
            return await client.post("/classify_bulk", json=columns)

    answer = asyncio.run(post())
    worker.scorer.close()
    assert answer.status_code == 413, answer.text
    assert "1001 rows" in answer.json()["error"] and "1000" in answer.json()["error"]
