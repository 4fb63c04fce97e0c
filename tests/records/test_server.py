"""A real server with the Parquet decision log: every route leaves one record per scored
applicant, as answered, and a SIGTERM under concurrent load leaves none of the answered ones
unwritten."""

import io
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pytest

from export.pipeline import ExportSummary
from features.schema import FIELDS, NUMERIC_FIELDS
from harness.process import ServedProcess, free_port, served
from service.http.media import ARROW_STREAM
from tests.bodies import applicant_columns, v2_inputs
from tests.metrics_text import metric_total

pytestmark = pytest.mark.slow
KEY = "records-test-key-0123456789abcdef"
CLIENT = "lender-a"
V2_INFER = "/v2/models/credit_risk/infer"


@pytest.fixture
def recorded_server(
    exported: ExportSummary, tmp_path: Path
) -> Iterator[tuple[ServedProcess, Path]]:
    log = tmp_path / "decision log"
    keys = tmp_path / "api-keys"
    keys.write_text(f"{CLIENT} {KEY}\n")
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "2",
        "CREDIT_RISK_DECISION_LOG": str(log),
        "CREDIT_RISK_DECISION_LOG_ROTATE_S": "2",
        "CREDIT_RISK_API_KEYS_FILE": str(keys),
        "CREDIT_RISK_DRAIN_DELAY_S": "1",
    }
    with served(env, log_path=tmp_path / "serve.log", extra_args=("--production",)) as server:
        yield server, log


class Sent:
    """Every answered request: its id, route and the decisions it answered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: dict[str, tuple[str, list[float], list[str], list[list[str | None]]]] = {}
        self.ids = itertools.count()
        self.strict = True  # every request must be answered (False under the SIGTERM)

    def post(self, client: httpx.Client, route: str, prefix: str, **request: Any) -> None:
        request_id = f"{prefix}-{next(self.ids)}"
        headers = {"authorization": f"Bearer {KEY}", "x-request-id": request_id}
        headers.update(request.pop("headers", {}))
        answer = client.post(route, headers=headers, **request)
        if answer.status_code != 200:
            assert not self.strict, f"{route}: {answer.status_code} {answer.text}"
            return  # refused (503 while draining): not scored, no record due
        probabilities, statuses, reasons = decisions_of(route, answer)
        with self.lock:
            self.answers[request_id] = (route.split("?")[0], probabilities, statuses, reasons)


def decisions_of(
    route: str, answer: httpx.Response
) -> tuple[list[float], list[str], list[list[str | None]]]:
    if answer.headers["content-type"].startswith(ARROW_STREAM):
        table = pa.ipc.open_stream(answer.content).read_all()
        return (
            table.column("probability").to_pylist(),
            table.column("status").to_pylist(),
            [],
        )
    body = orjson.loads(answer.content)
    if route == V2_INFER:
        outputs = {output["name"]: output["data"] for output in body["outputs"]}
        return outputs["probability"], outputs["status"], []
    if isinstance(body, dict) and isinstance(body.get("probability"), list):  # bulk
        reasons = [body.get(f"reason_{k}") for k in range(1, 5)]
        per_row = [list(row) for row in zip(*reasons, strict=True)] if reasons[0] else []
        return body["probability"], body["status"], per_row
    items = body if isinstance(body, list) else [body]
    explained = [
        [r["code"] for r in item["reasons"]] + [None] * (4 - len(item["reasons"]))
        for item in items
        if "reasons" in item
    ]
    return [i["probability"] for i in items], [i["status"] for i in items], explained


def every_route(client: httpx.Client, sent: Sent, rows: list[dict[str, Any]]) -> None:
    sent.post(client, "/classify", "one", json=rows[0])
    sent.post(client, "/classify_batch", "batch", json=rows[1:4])
    sent.post(client, "/classify_bulk?reasons=4", "bulk-json", json=applicant_columns(rows[:60]))
    csv = io.BytesIO()
    pcsv.write_csv(pa.Table.from_pylist(rows[60:80]), csv)
    sent.post(
        client,
        "/classify_bulk",
        "bulk-csv",
        content=csv.getvalue(),
        headers={"content-type": "text/csv"},
    )
    arrow = io.BytesIO()
    table = pa.Table.from_pylist(rows[80:100])
    with pa.ipc.new_stream(arrow, table.schema) as writer:
        writer.write_table(table)
    sent.post(
        client,
        "/classify_bulk",
        "bulk-arrow",
        content=arrow.getvalue(),
        headers={"content-type": ARROW_STREAM, "accept": ARROW_STREAM},
    )
    sent.post(client, "/explain", "explain", json=rows[100])
    sent.post(client, "/explain_batch", "explain-batch", json=rows[101:106])
    inputs = v2_inputs(applicant_columns(rows[106:116]))
    sent.post(client, V2_INFER, "v2", json={"inputs": inputs})


def load(url: str, sent: Sent, rows: list[dict[str, Any]], stop: threading.Event) -> None:
    """Requests of every kind until the server stops answering."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in itertools.count():
            if stop.is_set():
                return
            try:
                if i % 10 == 0:
                    every_route(client, sent, rows[i % 200 :])
                else:
                    sent.post(client, "/classify", "load", json=rows[i % len(rows)])
            except httpx.TransportError:
                return  # the server has closed its listener


def test_every_route_records_every_answered_decision_through_sigterm(
    recorded_server: tuple[ServedProcess, Path], records: list[dict[str, Any]]
) -> None:
    server, log = recorded_server
    rows = records[:400]
    sent = Sent()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        every_route(client, sent, rows)
    assert len(sent.answers) == 8  # every route answered
    sent.strict = False
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(server.url, sent, rows, stop)) for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    metrics = httpx.get(
        f"{server.url}/metrics", headers={"authorization": f"Bearer {KEY}"}, timeout=30
    ).text
    os.killpg(server.process.pid, signal.SIGTERM)  # under load, drains, then stops
    assert server.process.wait(timeout=120) == 0
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert metric_total(metrics, "credit_risk_decision_records_written_total") > 0
    assert not list(log.glob("_journal-*")), "a journal was left: close() did not run"
    assert not list((log / "_spool").glob("spool-*"))
    table = ds.dataset(log, format="parquet").to_table()
    records_by_key = {(r["request_id"], r["row_index"]): r for r in table.to_pylist()}
    assert len(records_by_key) == table.num_rows  # no record twice
    expected = sum(len(p) for _, p, _, _ in sent.answers.values())
    missing = [
        (request_id, i)
        for request_id, (_, probabilities, _, _) in sent.answers.items()
        for i in range(len(probabilities))
        if (request_id, i) not in records_by_key
    ]
    assert missing == [], f"{len(missing)} of {expected} answered decisions have no record"
    routes = set()
    for request_id, (route, probabilities, statuses, reasons) in sent.answers.items():
        for i, (probability, status) in enumerate(zip(probabilities, statuses, strict=True)):
            record = records_by_key[request_id, i]
            assert np.float32(record["probability"]) == np.float32(probability)
            assert record["status"] == status
            assert record["route"] == route and record["client"] == CLIENT
            routes.add(route)
            if status == "APPROVED":
                assert record["reason_1"] is None
            else:
                assert record["reason_1"] is not None
            if reasons:  # the answer gave reason codes: the record has the same
                assert [record[f"reason_{k}"] for k in range(1, 5)] == reasons[i]
    assert routes == {
        "/classify", "/classify_batch", "/classify_bulk", "/explain", "/explain_batch", V2_INFER,
    }  # fmt: skip
    # The applicant's fields as sent (the single /classify of the first request).
    first = records_by_key["one-0", 0]
    assert {name: first[name] for name in FIELDS} == {
        name: float(v) if name in NUMERIC_FIELDS else v for name, v in rows[0].items()
    }
    print(f"\n{len(sent.answers)} answered requests, {expected} decisions, 0 missing")


@pytest.mark.parametrize("policy", ["refuse", "drop"])
def test_a_full_spool_refuses_or_drops_as_configured(
    exported: ExportSummary, tmp_path: Path, records: list[dict[str, Any]], policy: str
) -> None:
    """PostgreSQL unreachable and a spool that holds nothing: `refuse` answers 503 with
    Retry-After until records can be kept (what was answered before is spooled at SIGTERM,
    over the bound rather than lost); `drop` keeps answering and counts what it drops."""
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    spool = tmp_path / "spool"
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_DECISION_LOG": unreachable,
        "CREDIT_RISK_DECISION_LOG_SPOOL_DIR": str(spool),
        "CREDIT_RISK_DECISION_LOG_SPOOL_MAX_BYTES": "1024",
        "CREDIT_RISK_DECISION_LOG_SPOOL_FULL": policy,
    }
    answered: list[str] = []
    statuses: list[int] = []
    with (
        served(env, log_path=tmp_path / "serve.log") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(statuses) < 40:
            request_id = f"{policy}-{len(statuses)}"
            answer = client.post(
                "/classify", json=records[len(statuses)], headers={"x-request-id": request_id}
            )
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                answered.append(request_id)
            elif policy == "refuse":
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "1"
                assert "spool is full" in answer.json()["error"]
            time.sleep(0.1)
        metrics = client.get("/metrics").text
    if policy == "refuse":
        assert 503 in statuses and statuses[0] == 200
        # Every answered decision was kept: in the spool, written at the drain.
        kept = [
            r["request_id"]
            for path in sorted(spool.glob("spool-*.arrow"))
            for r in pa.ipc.open_file(pa.OSFile(str(path))).read_all().to_pylist()
        ]
        assert sorted(kept) == sorted(answered)
    else:
        assert set(statuses) == {200}
        assert metric_total(metrics, "credit_risk_decision_records_dropped_total") > 0
