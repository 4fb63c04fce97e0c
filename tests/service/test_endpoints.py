"""Single, batch and bulk endpoints against a real server, compared with in-process ORT."""

import csv
import io

import httpx
import numpy as np
import pyarrow as pa
import pytest

from export.pipeline import ExportSummary
from features.schema import CATEGORICAL_FIELDS, FIELDS
from harness.process import ServedProcess
from service.arrow_io import table_as_ipc
from service.http.media import ARROW_FILE, ARROW_STREAM

pytestmark = pytest.mark.slow  # starts real server processes

TOLERANCE = 1e-6


def _status(p: float) -> str:
    return "DECLINED" if p > 0.5 else "MAYBE" if p > 0.3 else "APPROVED"


def test_classify_single_matches_in_process_onnx(
    server: ServedProcess, records, expected_probability, exported: ExportSummary
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(0, len(records), 97):
            answer = client.post("/classify", json=records[i])
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["probability"] == pytest.approx(expected_probability[i], abs=TOLERANCE)
            assert body["status"] == _status(body["probability"])
            assert body["model"] == exported.onnx_tag


def test_classify_batch_keeps_order(server: ServedProcess, records, expected_probability) -> None:
    chunk = records[:500]
    answer = httpx.post(f"{server.url}/classify_batch", json=chunk, timeout=30)
    assert answer.status_code == 200, answer.text
    probabilities = [d["probability"] for d in answer.json()]
    np.testing.assert_allclose(probabilities, expected_probability[:500], atol=TOLERANCE)
    assert [d["status"] for d in answer.json()] == [_status(p) for p in probabilities]


def test_classify_bulk_columnar_json(server: ServedProcess, records, expected_probability) -> None:
    columns = {name: [r[name] for r in records] for name in FIELDS}
    answer = httpx.post(f"{server.url}/classify_bulk", json=columns, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    np.testing.assert_allclose(body["probability"], expected_probability, atol=TOLERANCE)
    assert body["status"] == [_status(p) for p in body["probability"]]


def test_classify_bulk_csv(server: ServedProcess, records, expected_probability) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(FIELDS))
    writer.writeheader()
    writer.writerows(records)
    answer = httpx.post(
        f"{server.url}/classify_bulk",
        content=text.getvalue().encode(),
        headers={"content-type": "text/csv"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["probability"], expected_probability, atol=TOLERANCE)


def test_bulk_larger_than_one_chunk_is_split_and_complete(
    server: ServedProcess, records, expected_probability
) -> None:
    """100k rows cross the 65,536-row chunk boundary; every row must come back in order."""
    n = 100_000
    index = np.arange(n) % len(records)
    columns = {name: [records[i][name] for i in index] for name in FIELDS}
    answer = httpx.post(f"{server.url}/classify_bulk", json=columns, timeout=120)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(
        answer.json()["probability"], expected_probability[index], atol=TOLERANCE
    )


@pytest.mark.parametrize(
    ("content_type", "accept"),
    [(ARROW_STREAM, ARROW_STREAM), (ARROW_FILE, "application/json")],
    ids=["stream-in-arrow-out", "file-in-json-out"],
)
def test_classify_bulk_arrow(
    server: ServedProcess,
    records,
    expected_probability,
    exported: ExportSummary,
    content_type: str,
    accept: str,
) -> None:
    """100k rows (across the chunk boundary) as an Arrow body, categories dictionary-encoded;
    the answer as Arrow or JSON, as the client asks."""
    index = np.arange(100_000) % len(records)
    table = pa.table(
        {
            name: pa.array([records[i][name] for i in index]).dictionary_encode()
            if name in CATEGORICAL_FIELDS
            else [records[i][name] for i in index]
            for name in FIELDS
        }
    )
    answer = httpx.post(
        f"{server.url}/classify_bulk",
        content=table_as_ipc(table, content_type == ARROW_FILE),
        headers={"content-type": content_type, "accept": accept},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == accept
    if accept == ARROW_STREAM:
        decisions = pa.ipc.open_stream(answer.content).read_all()
        assert decisions.schema.metadata == {b"model": exported.onnx_tag.encode()}
        assert decisions.column("probability").type == pa.float32()
        probabilities = decisions.column("probability").to_numpy()
        statuses = decisions.column("status").to_pylist()
    else:
        probabilities, statuses = answer.json()["probability"], answer.json()["status"]
    np.testing.assert_allclose(probabilities, expected_probability[index], atol=TOLERANCE)
    assert statuses == [_status(p) for p in probabilities]


def test_bad_arrow_body_names_column_and_row(server: ServedProcess, records) -> None:
    columns = {name: [r[name] for r in records[:10]] for name in FIELDS}
    columns["job"][6] = "astronaut"
    answer = httpx.post(
        f"{server.url}/classify_bulk",
        content=table_as_ipc(pa.table(columns)),
        headers={"content-type": ARROW_STREAM},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"].startswith("job[6]: must be one of")


def test_info_health_and_docs(server: ServedProcess, exported: ExportSummary) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        info = client.get("/info").json()
        assert info["model"] == exported.onnx_tag
        assert info["native_model"] == exported.native_tag
        assert (info["engine"], info["provider"], info["batching"]) == ("onnx", "cpu", "adaptive")
        assert info["workers"] == 2
        assert info["arrow_memory_pool"] == "system"  # CREDIT_RISK_ARROW_MEMORY_POOL's default
        assert info["bulk"]["threads"] >= 1 and info["bulk"]["chunk_rows"] == 65_536
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200
        spec = client.get("/docs.json").json()
        for route in ("/classify", "/classify_batch", "/classify_bulk"):
            assert route in spec["paths"], route
        schemas = spec["components"]["schemas"]
        assert "home" in str(schemas) and "seniority" in str(schemas)
        assert client.get("/").status_code == 200
