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


@pytest.mark.slow
def test_per_row_verdicts_on_a_real_server(server: ServedProcess) -> None:
    """JSON body and V2 tensors with per-row verdicts: the bad rows INVALID with the Spark
    job's words, the good ones scored, on a real server (the Arrow body: tests/client)."""
    columns: dict[str, list[object]] = {k: [v] * 4 for k, v in GOOD.items()}
    columns["age"] = [26, 5.0, "30", 26]
    columns["home"] = ["owner", "owner", "owner", "castle"]
    bulk = httpx.post(f"{server.url}/classify_bulk?per_row=true", json=columns, timeout=30)
    assert bulk.status_code == 200, bulk.text
    answer = bulk.json()
    assert answer["status"][1:] == ["INVALID"] * 3 and answer["probability"][1:] == [None] * 3
    assert answer["error"] == [
        None,
        "age: must be a number from 18 to 120; got 5",
        "age: must be a number from 18 to 120; got '30'",
        "home: must be one of unk, rent, owner, private, ignore, parents, other; got 'castle'",
    ]
    inputs = [
        {"name": name, "shape": [4], "datatype": "BYTES" if isinstance(GOOD[name], str) else "FP64",
         "data": values}
        for name, values in columns.items()
    ]  # fmt: skip
    infer = httpx.post(
        f"{server.url}/v2/models/credit_risk/infer",
        json={"inputs": inputs, "parameters": {"per_row": True}},
        timeout=30,
    )
    assert infer.status_code == 200, infer.text
    outputs = {output["name"]: output["data"] for output in infer.json()["outputs"]}
    assert outputs["status"] == answer["status"]
    assert outputs["error"] == [error or "" for error in answer["error"]]
    assert outputs["probability"][0] == pytest.approx(answer["probability"][0], abs=1e-6)
