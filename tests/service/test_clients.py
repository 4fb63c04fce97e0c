"""Clients that already exist work unchanged against a real server: BentoML's own HTTP clients
on every public endpoint, and the Open Inference Protocol's clients (NVIDIA's tritonclient,
KServe's InferenceRESTClient) on /v2, whose answers equal /classify_bulk's."""

import asyncio
from typing import Any

import bentoml
import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from export.pipeline import ExportSummary
from features.schema import CATEGORICAL_FIELDS, FIELDS
from harness.process import ServedProcess
from service.registry import typed
from tests.bodies import applicant_columns

pytestmark = pytest.mark.slow
ROWS = 300


def _bulk(server: ServedProcess, records: list[dict[str, Any]]) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/classify_bulk", json=applicant_columns(records), timeout=60)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_bentoml_clients_see_every_typed_route_of_the_registry(server: ServedProcess) -> None:
    """BentoML's clients build their methods from /schema.json, which the typed API makes."""
    routes = httpx.get(f"{server.url}/schema.json", timeout=30).json()["routes"]
    assert {(r["name"], r["route"]) for r in routes} == {(e.typed_api, e.path) for e in typed()}


def test_bentoml_sync_client_calls_every_endpoint(
    server: ServedProcess, records, expected_probability, exported: ExportSummary
) -> None:
    with bentoml.SyncHTTPClient(server.url) as client:
        single = client.classify(**records[0])
        batch = client.classify_batch(records[:50])
        bulk = client.classify_bulk(**applicant_columns(records[:40]))
        explained = client.explain(**records[1])
        explained_batch = client.explain_batch(records[:5])
    assert single["probability"] == pytest.approx(expected_probability[0], abs=1e-6)
    assert single["model"] == exported.onnx_tag
    got = [decision["probability"] for decision in batch]
    np.testing.assert_allclose(got, expected_probability[:50], atol=1e-6)
    np.testing.assert_allclose(bulk["probability"], expected_probability[:40], atol=1e-6)
    assert set(explained["contributions"]) == set(FIELDS)
    assert explained["probability"] == pytest.approx(expected_probability[1], abs=1e-5)
    assert len(explained_batch) == 5 and all("reasons" in item for item in explained_batch)


def test_bentoml_async_client_calls_every_endpoint(
    server: ServedProcess, records, expected_probability
) -> None:
    async def calls() -> tuple[Any, ...]:
        async with bentoml.AsyncHTTPClient(server.url) as client:
            return await asyncio.gather(
                client.classify(**records[2]),
                client.classify_batch(records[:20]),
                client.classify_bulk(**applicant_columns(records[:20])),
                client.explain(**records[3]),
                client.explain_batch(records[:3]),
            )

    single, batch, bulk, explained, explained_batch = asyncio.run(calls())
    assert single["probability"] == pytest.approx(expected_probability[2], abs=1e-6)
    np.testing.assert_allclose(
        [d["probability"] for d in batch], expected_probability[:20], atol=1e-6
    )
    np.testing.assert_allclose(bulk["probability"], expected_probability[:20], atol=1e-6)
    assert explained["probability"] == pytest.approx(expected_probability[3], abs=1e-5)
    assert len(explained_batch) == 3


def _triton_inputs(records: list[dict[str, Any]], binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in FIELDS:
        values = [record[name] for record in records]
        if name in CATEGORICAL_FIELDS:
            tensor = triton.InferInput(name, [len(values)], "BYTES")
            tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
        else:
            tensor = triton.InferInput(name, [len(values)], "FP64")
            tensor.set_data_from_numpy(np.array(values, dtype=np.float64), binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [False, True], ids=["json tensors", "binary tensors"])
def test_tritonclient_infers_like_classify_bulk(
    server: ServedProcess, records, binary: bool
) -> None:
    rows = records[:ROWS]
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("credit_risk")
    metadata = client.get_model_metadata("credit_risk")
    assert [tensor["name"] for tensor in metadata["inputs"]] == list(FIELDS)
    outputs = [
        triton.InferRequestedOutput("probability", binary_data=binary),
        triton.InferRequestedOutput("status", binary_data=binary),
    ]
    result = client.infer("credit_risk", _triton_inputs(rows, binary), outputs=outputs)
    bulk = _bulk(server, rows)
    np.testing.assert_allclose(result.as_numpy("probability"), bulk["probability"], atol=1e-6)
    assert [s.decode() if isinstance(s, bytes) else s for s in result.as_numpy("status")] == bulk[
        "status"
    ]
    version = metadata["versions"][0]
    again = client.infer("credit_risk", _triton_inputs(rows[:3], binary), model_version=version)
    np.testing.assert_allclose(again.as_numpy("probability"), bulk["probability"][:3], atol=1e-6)


def test_tritonclient_gets_an_error_naming_the_bad_input(server: ServedProcess, records) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    bad = [dict(record) for record in records[:5]]
    bad[3]["age"] = 12
    with pytest.raises(InferenceServerException, match=r"age\[3\]"):
        client.infer("credit_risk", _triton_inputs(bad, binary=False))
    with pytest.raises(InferenceServerException, match="credit_risk"):
        client.infer("no_such_model", _triton_inputs(records[:2], binary=False))


def test_kserve_client_infers_like_classify_bulk(server: ServedProcess, records) -> None:
    rows = records[:ROWS]

    async def infer() -> tuple[bool, Any]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            ready = await client.is_model_ready(server.url, "credit_risk")
            inputs = []
            for name in FIELDS:
                values = [record[name] for record in rows]
                datatype = "BYTES" if name in CATEGORICAL_FIELDS else "FP64"
                inputs.append(
                    InferInput(name=name, shape=[len(values)], datatype=datatype, data=values)
                )
            request = InferRequest(model_name="credit_risk", infer_inputs=inputs)
            return ready, await client.infer(server.url, request, model_name="credit_risk")
        finally:
            await client.close()

    ready, response = asyncio.run(infer())
    assert ready
    by_name = {output.name: output for output in response.outputs}
    bulk = _bulk(server, rows)
    np.testing.assert_allclose(by_name["probability"].as_numpy(), bulk["probability"], atol=1e-6)
    statuses = [s.decode() if isinstance(s, bytes) else s for s in by_name["status"].as_numpy()]
    assert statuses == bulk["status"]
