"""Per-row verdicts (`/classify_bulk?per_row=true`, the V2 request parameter `per_row`): every
valid row scored, every invalid row INVALID with the Spark job's error text; JSON, CSV, Arrow and
V2 tensors agree, and the default still refuses the whole request naming the field and row."""

import asyncio
import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pytest

from export.pipeline import ExportSummary
from features.schema import FIELDS, NUMERIC_FIELDS
from service.arrow_io import table_as_ipc
from service.settings import ServiceSettings
from service.wiring import Worker, build_worker
from tests.bodies import applicant_columns, v2_inputs
from tests.inprocess import client_for, door_for_worker

ARROW = "application/vnd.apache.arrow.stream"
ROWS = 40
# Row -> (field, value sent, the error every way in must give).
BAD: dict[int, tuple[str, Any, str]] = {
    3: ("age", 5, "age: must be a number from 18 to 120; got 5"),
    4: ("age", 12.5, "age: must be a number from 18 to 120; got 12.5"),
    11: (
        "home",
        "castle",
        "home: must be one of unk, rent, owner, private, ignore, parents, other; got 'castle'",
    ),
    20: ("income", None, "income: missing value"),
    39: ("price", -1, "price: must be a number from 0 to 1e+09; got -1"),
}


@pytest.fixture(scope="module")
def worker(exported: ExportSummary) -> Iterator[Worker]:
    built = build_worker(ServiceSettings(model_tag=exported.onnx_tag, drain_delay_s=0))
    yield built
    built.scorer.close()


@pytest.fixture(scope="module")
def columns(records) -> dict[str, list[Any]]:
    values = applicant_columns(records[:ROWS])
    for row, (field, value, _) in BAD.items():
        values[field][row] = value
    return values


def _post(worker: Worker, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client_for(door_for_worker(worker)) as client:
            return await client.post(path, **kwargs)

    return asyncio.run(go())


def _csv(columns: dict[str, list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    writer.writerows(zip(*(columns[name] for name in FIELDS), strict=True))
    return out.getvalue().encode()


def _arrow(columns: dict[str, list[Any]]) -> bytes:
    types = {name: pa.float64() if name in NUMERIC_FIELDS else pa.string() for name in FIELDS}
    return table_as_ipc(pa.table({n: pa.array(columns[n], types[n]) for n in FIELDS}))


def _answers(worker: Worker, columns: dict[str, list[Any]], query: str) -> dict[str, dict]:
    """The same rows through /classify_bulk as JSON, CSV and Arrow (Arrow answer too)."""
    path = f"/classify_bulk{query}"
    answers = {
        "json": _post(worker, path, content=orjson.dumps(columns)),
        "csv": _post(worker, path, content=_csv(columns), headers={"content-type": "text/csv"}),
    }
    arrow = _post(
        worker, path, content=_arrow(columns), headers={"content-type": ARROW, "accept": ARROW}
    )
    out = {name: {"status_code": a.status_code, **a.json()} for name, a in answers.items()}
    if arrow.status_code == 200:
        table = pa.ipc.open_stream(arrow.content).read_all()
        out["arrow"] = {"status_code": 200, **table.to_pydict()}
    else:
        out["arrow"] = {"status_code": arrow.status_code, **arrow.json()}
    return out


def test_invalid_rows_are_marked_and_the_rest_scored_alike_in_every_format(
    worker: Worker, columns: dict[str, list[Any]]
) -> None:
    valid = [row for row in range(ROWS) if row not in BAD]
    only_valid = {name: [values[row] for row in valid] for name, values in columns.items()}
    expected = _post(worker, "/classify_bulk", content=orjson.dumps(only_valid)).json()
    for name, answer in _answers(worker, columns, "?per_row=true").items():
        assert answer["status_code"] == 200, (name, answer)
        assert [answer["error"][row] for row in BAD] == [bad[2] for bad in BAD.values()], name
        assert [answer["error"][row] for row in valid] == [None] * len(valid), name
        assert [answer["status"][row] for row in BAD] == ["INVALID"] * len(BAD), name
        assert [answer["probability"][row] for row in BAD] == [None] * len(BAD), name
        np.testing.assert_allclose(
            [answer["probability"][row] for row in valid], expected["probability"], atol=1e-7
        )
        assert [answer["status"][row] for row in valid] == expected["status"], name


def test_the_default_still_refuses_naming_field_and_row(
    worker: Worker, columns: dict[str, list[Any]]
) -> None:
    for name, answer in _answers(worker, columns, "").items():
        assert answer["status_code"] == 422, (name, answer)
        assert answer["error"] == (
            "home[11]: must be one of unk, rent, owner, private, ignore, parents, other; "
            "got 'castle' (and 3 more)"
        ), name
        assert [d["location"] for d in answer["details"]] == [
            "home[11]",
            "age[3]",
            "income[20]",
            "price[39]",
        ], name


def test_all_valid_rows_answer_as_the_default_with_an_empty_error_column(
    worker: Worker, records
) -> None:
    good = {name: [r[name] for r in records[:ROWS]] for name in FIELDS}
    default = _post(worker, "/classify_bulk", content=orjson.dumps(good)).json()
    per_row = _post(worker, "/classify_bulk?per_row=true", content=orjson.dumps(good)).json()
    assert per_row["error"] == [None] * ROWS
    assert {k: v for k, v in per_row.items() if k != "error"} == default


def test_every_row_invalid_and_reasons_beside_verdicts(worker: Worker, records) -> None:
    bad = {name: [r[name] for r in records[:3]] for name in FIELDS}
    bad["age"] = [1, 2, 3]
    answer = _post(worker, "/classify_bulk?per_row=true&reasons=2", content=orjson.dumps(bad))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == ["INVALID"] * 3 and body["probability"] == [None] * 3
    assert body["reason_1"] == [None] * 3 and body["error"][0].startswith("age: ")


def test_a_bad_per_row_value_is_refused(worker: Worker, columns: dict[str, list[Any]]) -> None:
    answer = _post(worker, "/classify_bulk?per_row=yes", content=orjson.dumps(columns))
    assert answer.status_code == 422 and answer.json()["error"].startswith("per_row: ")


def _infer_request(columns: dict[str, list[Any]], **parameters: Any) -> bytes:
    request: dict[str, Any] = {"inputs": v2_inputs(columns)}
    if parameters:
        request["parameters"] = parameters
    return orjson.dumps(request)


def test_v2_per_row_verdicts_equal_classify_bulks(
    worker: Worker, columns: dict[str, list[Any]]
) -> None:
    path = "/v2/models/credit_risk/infer"
    answer = _post(worker, path, content=_infer_request(columns, per_row=True))
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    bulk = _answers(worker, columns, "?per_row=true")["json"]
    assert outputs["status"] == bulk["status"]
    assert outputs["error"] == [error or "" for error in bulk["error"]]
    np.testing.assert_allclose(
        [np.nan if p is None else p for p in outputs["probability"]],
        [np.nan if p is None else p for p in bulk["probability"]],
        atol=1e-7,
    )
    refused = _post(worker, path, content=_infer_request(columns))
    assert refused.status_code == 422
    assert refused.json()["error"].startswith("home[11]: must be one of")


def test_v2_refuses_a_json_string_in_a_numeric_tensor(worker: Worker, records) -> None:
    """Every other way in refuses "30" for a number; the V2 route used to coerce it."""
    good = {name: [r[name] for r in records[:3]] for name in FIELDS}
    good["age"] = [30, "30", 40]
    answer = _post(worker, "/v2/models/credit_risk/infer", content=_infer_request(good))
    assert answer.status_code == 422
    assert answer.json()["error"] == "age[1]: must be a number from 18 to 120; got '30'"
    bulk = _post(worker, "/classify_bulk", content=orjson.dumps(good))
    assert bulk.json()["error"] == answer.json()["error"]
