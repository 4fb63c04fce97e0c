"""Reasons for every decision and decision monitoring, against real servers."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from export.pipeline import ExportSummary
from features.reasons import TEXTS
from features.schema import FIELDS
from harness.process import ServedProcess, served
from service.arrow_io import table_as_ipc
from service.http.media import ARROW_STREAM
from tests.metrics_text import metric_total, scrape_until

pytestmark = pytest.mark.slow


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_explanations_add_up_and_give_reasons_for_maybe_and_declined(
    server: ServedProcess, records, expected_probability
) -> None:
    picks = list(range(0, len(records), 23))
    answer = httpx.post(f"{server.url}/explain_batch", json=[records[i] for i in picks], timeout=60)
    assert answer.status_code == 200, answer.text
    explained = answer.json()
    statuses = {item["status"] for item in explained}
    assert statuses == {"APPROVED", "MAYBE", "DECLINED"}  # every kind of answer covered
    for i, item in zip(picks, explained, strict=True):
        assert item["probability"] == pytest.approx(expected_probability[i], abs=1e-5)
        assert list(item["contributions"]) == list(FIELDS)
        total = item["bias"] + sum(item["contributions"].values())
        assert total == pytest.approx(_logit(item["probability"]), abs=1e-3)
        reasons = item["reasons"]
        if item["status"] == "APPROVED":
            assert reasons == []
            continue
        assert 1 <= len(reasons) <= 4
        pushes = [reason["contribution"] for reason in reasons]
        assert pushes == sorted(pushes, reverse=True) and pushes[-1] > 0
        for reason in reasons:
            assert reason["contribution"] == pytest.approx(item["contributions"][reason["field"]])
            assert reason["value"] == records[i][reason["field"]]
            assert TEXTS[reason["code"]] == reason["text"]
    single = httpx.post(f"{server.url}/explain", json=records[picks[1]], timeout=30).json()
    assert single == explained[1]


def test_bulk_reason_columns_match_the_explanations(server: ServedProcess, records) -> None:
    rows = records[:400]
    columns = {name: [row[name] for row in rows] for name in FIELDS}
    bulk = httpx.post(f"{server.url}/classify_bulk?reasons=3", json=columns, timeout=60).json()
    explained = httpx.post(f"{server.url}/explain_batch", json=rows, timeout=60).json()
    for rank in range(3):
        want = [
            item["reasons"][rank]["code"] if len(item["reasons"]) > rank else None
            for item in explained
        ]
        assert bulk[f"reason_{rank + 1}"] == want
    assert "reason_4" not in bulk
    arrow = httpx.post(
        f"{server.url}/classify_bulk?reasons=2",
        content=table_as_ipc(pa.table(columns)),
        headers={"content-type": ARROW_STREAM, "accept": ARROW_STREAM},
        timeout=60,
    )
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.column("reason_2").to_pylist() == bulk["reason_2"]


@pytest.mark.parametrize("query", ["reasons=14", "reasons=-1", "reasons=two"])
def test_bad_reason_counts_are_refused(server: ServedProcess, records, query: str) -> None:
    columns = {name: [records[0][name]] for name in FIELDS}
    answer = httpx.post(f"{server.url}/classify_bulk?{query}", json=columns, timeout=30)
    assert answer.status_code == 422 and answer.json()["error"].startswith("reasons:")


@pytest.fixture(scope="module")
def drift_server(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """One worker (one drift window) small enough to fill with a few bulk requests."""
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_DRIFT_WINDOW_ROWS": "2000",
    }
    with served(env, log_path=tmp_path_factory.mktemp("drift") / "serve.log") as process:
        yield process


def _psi(metrics: str) -> dict[str, float]:
    return {field: metric_total(metrics, "credit_risk_input_psi", field=field) for field in FIELDS}


def _decided(metrics: str) -> float:
    return sum(
        metric_total(metrics, "credit_risk_decisions_total", status=status)
        for status in ("APPROVED", "MAYBE", "DECLINED")
    )


def test_a_shifted_population_raises_that_fields_psi(
    drift_server: ServedProcess, records, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    sample: list[dict[str, Any]] = [records[i] for i in rng.choice(len(records), 2000)]
    columns = {name: [row[name] for row in sample] for name in FIELDS}
    url = drift_server.url
    assert httpx.post(f"{url}/classify_bulk", json=columns, timeout=60).status_code == 200
    before = _psi(scrape_until(url, lambda text: _decided(text) >= 2000))
    assert max(before.values()) < 0.1, before  # training-like rows: stable everywhere
    shifted = {**columns, "income": [value * 3 for value in columns["income"]]}
    assert httpx.post(f"{url}/classify_bulk", json=shifted, timeout=60).status_code == 200
    # The gauges are set in the flush that writes the counts; a scrape may read one file
    # before that flush and the other after, so wait for both.
    metrics = scrape_until(url, lambda text: _decided(text) >= 4000 and _psi(text) != before)
    after = _psi(metrics)
    assert after["income"] > 0.25, after
    assert max(value for field, value in after.items() if field != "income") < 0.1, after
    assert _decided(metrics) == 4000
    assert metric_total(metrics, "credit_risk_probability_count") == 4000
