"""Bad input gets a 4xx naming the field, and the server keeps serving."""

import math

import httpx
import pytest

from harness.process import ServedProcess

GOOD = {
    "seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
    "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
    "amount": 800, "price": 1000,
}  # fmt: skip


def _without(field: str) -> dict[str, object]:
    return {k: v for k, v in GOOD.items() if k != field}


CASES = [
    ("missing field", "/classify", _without("income"), 422, "income"),
    ("wrong type", "/classify", {**GOOD, "age": "twenty"}, 422, "age"),
    ("number as string", "/classify", {**GOOD, "amount": "800"}, 422, "amount"),
    ("unknown category", "/classify", {**GOOD, "home": "castle"}, 422, "home"),
    ("negative", "/classify", {**GOOD, "debt": -1}, 422, "debt"),
    ("minor", "/classify", {**GOOD, "age": 12}, 422, "age"),
    ("extra field", "/classify", {**GOOD, "incme": 5}, 422, "incme"),
    ("not an object", "/classify", [GOOD], 422, "body"),
    ("batch bad row", "/classify_batch", [GOOD, {**GOOD, "job": "pirate"}], 422, "[1].job"),
    ("empty batch", "/classify_batch", [], 422, "body"),
    ("bulk ragged", "/classify_bulk", {**{k: [v, v] for k, v in GOOD.items()}, "age": [30]}, 422, "age"),
    ("bulk bad row", "/classify_bulk", {**{k: [v, v, v] for k, v in GOOD.items()}, "price": [1, 2, -3]}, 422, "price[2]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "route", "payload", "status", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_json_gets_4xx_naming_the_field(
    server: ServedProcess, name: str, route: str, payload: object, status: int, field: str
) -> None:
    answer = httpx.post(f"{server.url}{route}", json=payload, timeout=30)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert field in body["error"], body
    assert body["details"], body


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(server: ServedProcess, literal: str) -> None:
    text = (
        httpx.Request("POST", "/", json=GOOD)
        .content.decode()
        .replace('"income":0.0', f'"income":{literal}')
    )
    assert literal in text
    answer = httpx.post(
        f"{server.url}/classify",
        content=text,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert "income" in answer.json()["error"] or literal == "NaN" or math.isinf(float("inf"))


def test_malformed_json_is_400(server: ServedProcess) -> None:
    answer = httpx.post(
        f"{server.url}/classify",
        content=b'{"age": 30,',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert "JSON" in answer.json()["error"]


def test_oversized_batch_is_413(server: ServedProcess) -> None:
    answer = httpx.post(f"{server.url}/classify_batch", json=[GOOD] * 1001, timeout=30)
    assert answer.status_code == 413, answer.text
    assert "1001" in answer.json()["error"] and "1000" in answer.json()["error"]


def test_bulk_over_row_limit_is_413(server: ServedProcess) -> None:
    columns = {k: [v] * 200_001 for k, v in GOOD.items()}
    answer = httpx.post(f"{server.url}/classify_bulk", json=columns, timeout=120)
    assert answer.status_code == 413, answer.text
    assert "rows" in answer.json()["error"]


def test_wrong_content_type_is_415(server: ServedProcess) -> None:
    answer = httpx.post(
        f"{server.url}/classify",
        content=b"age=3",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert answer.status_code == 415
    assert "content-type" in answer.json()["error"]


def test_bad_csv_names_column_and_row(server: ServedProcess) -> None:
    header = ",".join(GOOD)
    row = ",".join(str(v) for v in GOOD.values())
    bad = row.replace("owner", "castle")
    answer = httpx.post(
        f"{server.url}/classify_bulk",
        content=f"{header}\n{row}\n{bad}\n".encode(),
        headers={"content-type": "text/csv"},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    assert "home[1]" in answer.json()["error"]


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
