"""Champion and challenger on a real server with real exported models: the models file
(CREDIT_RISK_MODELS_FILE) switches models under load without a failed request, and a file or tag
that cannot be used keeps the current models and is counted."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from client import CreditRiskClient
from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from tests.bodies import v2_inputs
from tests.metrics_text import metric_total, scrape_until

RELOAD_S = 0.2
WORKERS = 2
# A different model: few shallow trees (another version in the same store, same guards).
CHALLENGER_PARAMS = ["max_depth=3", "eta=0.3", "num_boost_round=15", "seed=11"]
FAILURES = "credit_risk_models_reload_failures_total"


def write_models(path: Path, text: str) -> None:
    """Replace the file in one rename, as a ConfigMap update does (no half-written file)."""
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


@pytest.fixture(scope="module")
def challenger_tag(exported: ExportSummary, bentoml_home: str) -> str:
    """A real `python -m export --param ...` into the session's model store."""
    args = [arg for param in CHALLENGER_PARAMS for arg in ("--param", param)]
    result = subprocess.run(
        [sys.executable, "-m", "export", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENTOML_HOME": bentoml_home},
        timeout=300,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    tag = str(summary["onnx_tag"])
    assert tag != exported.onnx_tag
    return tag


@pytest.fixture(scope="module")
def models_server(
    exported: ExportSummary, challenger_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedProcess, Path]]:
    folder = tmp_path_factory.mktemp("models file")  # a path with a space
    models = folder / "models"
    write_models(models, f"# the course model decides\nchampion {exported.onnx_tag}\n")
    env = {
        # CREDIT_RISK_MODEL_TAG names the challenger: the file's champion must win over it.
        "CREDIT_RISK_MODEL_TAG": challenger_tag,
        "CREDIT_RISK_MODELS_FILE": str(models),
        "CREDIT_RISK_MODELS_RELOAD_S": str(RELOAD_S),
        "CREDIT_RISK_WORKERS": str(WORKERS),
    }
    with served(env, log_path=folder / "serve.log") as process:
        yield process, models


class Clients:
    """Client threads posting /classify on keep-alive connections until stopped."""

    def __init__(self, port: int, bodies: list[bytes], threads: int) -> None:
        self.port = port
        self.bodies = bodies
        self.answers: list[tuple[float, int, str]] = []  # (time, status, model)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> "Clients":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = index
        while not self._stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += 1
            try:
                connection.request("POST", "/classify", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                model = orjson.loads(payload).get("model", "") if response.status == 200 else ""
                with self._lock:
                    self.answers.append((time.monotonic(), response.status, model))
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.close()


def _info(server: ServedProcess) -> dict[str, object]:
    info: dict[str, object] = httpx.get(f"{server.url}/info", timeout=10).json()
    return info


def test_switch_under_load_fails_no_request(
    models_server: tuple[ServedProcess, Path],
    exported: ExportSummary,
    challenger_tag: str,
    records: list[dict[str, object]],
) -> None:
    server, models = models_server
    write_models(models, f"champion {exported.onnx_tag}\n")
    deadline = time.monotonic() + 30
    while _info(server)["model"] != exported.onnx_tag and time.monotonic() < deadline:
        time.sleep(RELOAD_S)
    bodies = [orjson.dumps(record) for record in records[:200]]
    with Clients(server.port, bodies, threads=6) as clients:
        time.sleep(1.0)
        switches = server.log().count("models switched") + WORKERS  # once each worker switched
        write_models(models, f"# promoted\nchampion {challenger_tag}\n")
        switched_at = time.monotonic()
        # Every worker has switched (under load) once each logged it and a run of answers all
        # name the challenger. The kernel may put all six connections on one worker, so the
        # answers alone do not show the other worker's switch.
        while time.monotonic() < switched_at + 90:
            time.sleep(0.2)
            recent = [model for _, _, model in clients.answers[-200:]]
            if (
                len(recent) == 200
                and set(recent) == {challenger_tag}
                and server.log().count("models switched") >= switches
            ):
                break
        time.sleep(0.5)
    statuses = {status for _, status, _ in clients.answers}
    assert clients.failures == [] and statuses == {200}, (clients.failures, statuses)
    before = [m for t, _, m in clients.answers if t < switched_at]
    after = [m for _, _, m in clients.answers[-200:]]
    assert before and set(before) == {exported.onnx_tag}
    assert set(after) == {challenger_tag}
    assert _info(server)["model"] == challenger_tag
    assert server.log().count("models switched") >= switches
    # Every worker's model-info gauge names the new champion; the old one's series reads 0.
    info = "credit_risk_model_info"
    text = scrape_until(server.url, lambda t: metric_total(t, info, model=challenger_tag) == 1)
    assert metric_total(text, info, model=challenger_tag) == 1
    assert metric_total(text, info, model=exported.onnx_tag) == 0


def test_unusable_file_or_tag_keeps_the_models_and_counts(
    models_server: tuple[ServedProcess, Path], records: list[dict[str, object]]
) -> None:
    server, models = models_server
    serving = _info(server)["model"]
    failed_before = metric_total(httpx.get(f"{server.url}/metrics").text, FAILURES)
    warned_before = server.log().count("current models kept")
    write_models(models, "champion credit_risk_onnx:nosuchversion\n")
    text = scrape_until(server.url, lambda t: metric_total(t, FAILURES) >= failed_before + WORKERS)
    assert metric_total(text, FAILURES) == failed_before + WORKERS  # one per worker
    time.sleep(10 * RELOAD_S)  # rereads of the same content neither warn nor count again
    answer = httpx.post(f"{server.url}/classify", json=records[0], timeout=10)
    assert answer.status_code == 200 and answer.json()["model"] == serving
    assert _info(server)["model"] == serving
    write_models(models, "champion\nmode sideways\n")  # not a usable file either
    text = scrape_until(
        server.url, lambda t: metric_total(t, FAILURES) >= failed_before + 2 * WORKERS
    )
    time.sleep(10 * RELOAD_S)
    text = httpx.get(f"{server.url}/metrics").text
    assert metric_total(text, FAILURES) == failed_before + 2 * WORKERS
    assert server.log().count("current models kept") == warned_before + 2 * WORKERS
    assert "nosuchversion" in server.log() and "needs exactly one value" in server.log()
    assert _info(server)["model"] == serving


def _wait_models(server: ServedProcess, **expected: object) -> None:
    """Until every worker serves what the models file says (several /info answers agree)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answers = [_info(server)["models"] for _ in range(8)]
        if all(
            all(answer[key] == value for key, value in expected.items())  # type: ignore[index]
            for answer in answers
        ):
            return
        time.sleep(RELOAD_S)
    raise AssertionError(f"models never became {expected}: {answers}")


def _batch(server: ServedProcess, applicants: list[dict[str, object]]) -> list[dict[str, object]]:
    answer = httpx.post(f"{server.url}/classify_batch", json=applicants, timeout=30)
    assert answer.status_code == 200, answer.text
    decisions: list[dict[str, object]] = answer.json()
    return decisions


def test_canary_is_sticky_per_applicant_on_every_route(
    models_server: tuple[ServedProcess, Path],
    exported: ExportSummary,
    challenger_tag: str,
    records: list[dict[str, object]],
) -> None:
    server, models = models_server
    applicants = records[:300]
    fraction = 0.3
    # Each model's own answers first, each the only model served.
    write_models(models, f"champion {exported.onnx_tag}\n")
    _wait_models(server, champion=exported.onnx_tag, challenger=None)
    champion = [d["probability"] for d in _batch(server, applicants)]
    write_models(models, f"champion {challenger_tag}\n")
    _wait_models(server, champion=challenger_tag, challenger=None)
    challenger = [d["probability"] for d in _batch(server, applicants)]
    assert champion != challenger

    write_models(
        models,
        f"champion {exported.onnx_tag}\nchallenger {challenger_tag}\n"
        f"mode canary\ncanary_fraction {fraction}\n",
    )
    _wait_models(server, challenger=challenger_tag, mode="canary", canary_fraction=fraction)
    by_batch = _batch(server, applicants)
    again = _batch(server, applicants)
    assert [d["model"] for d in again] == [d["model"] for d in by_batch]
    decided = [str(d["model"]) for d in by_batch]
    assert set(decided) == {exported.onnx_tag, challenger_tag}
    share = decided.count(challenger_tag) / len(decided)
    assert abs(share - fraction) < 0.1, share
    for i, decision in enumerate(by_batch):  # each row scored by the model it names
        own = challenger[i] if decision["model"] == challenger_tag else champion[i]
        assert decision["probability"] == pytest.approx(own, abs=1e-6)

    for i in range(0, len(applicants), 25):  # single applicants, both routes
        single = httpx.post(f"{server.url}/classify", json=applicants[i], timeout=10).json()
        assert single["model"] == decided[i]
        explained = httpx.post(f"{server.url}/explain", json=applicants[i], timeout=10).json()
        assert explained["model"] == decided[i]

    columns = {name: [a[name] for a in applicants] for name in applicants[0]}
    bulk = httpx.post(f"{server.url}/classify_bulk", json=columns, timeout=30).json()
    assert bulk["model"] == exported.onnx_tag
    assert bulk["row_model"] == decided
    assert bulk["probability"] == pytest.approx([d["probability"] for d in by_batch], abs=1e-5)
    with CreditRiskClient(server.url) as client:  # our client's `model` column, row by row
        scored = client.score_table(pa.table(columns), chunk_rows=100)
    assert scored.column("model").to_pylist() == decided

    inputs = v2_inputs(columns)  # V2 tensors: split row by row the same way
    v2 = httpx.post(f"{server.url}/v2/models/credit_risk/infer", json={"inputs": inputs})
    outputs = {output["name"]: output["data"] for output in v2.json()["outputs"]}
    assert outputs["probability"] == pytest.approx([d["probability"] for d in by_batch], abs=1e-5)


def test_shadow_scores_off_the_answer_and_fills_metrics_and_records(
    exported: ExportSummary,
    challenger_tag: str,
    records: list[dict[str, object]],
    tmp_path: Path,
) -> None:
    models, log = tmp_path / "models", tmp_path / "decision log"
    write_models(models, f"champion {exported.onnx_tag}\nchallenger {challenger_tag}\n")
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_MODELS_FILE": str(models),
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_DECISION_LOG": str(log),
    }
    applicants = records[:300]
    with served(env, log_path=tmp_path / "serve.log") as server:
        info = _info(server)["models"]
        assert info["challenger"] == challenger_tag and info["mode"] == "shadow"  # type: ignore[index]
        decisions = _batch(server, applicants)
        for applicant in applicants[:20]:
            single = httpx.post(f"{server.url}/classify", json=applicant, timeout=10).json()
            decisions.append(single)
        assert {d["model"] for d in decisions} == {exported.onnx_tag}  # the champion answers
        n = len(decisions)
        text = scrape_until(
            server.url,
            lambda t: metric_total(t, "credit_risk_challenger_decisions_total") >= n,
        )
    matrix = "credit_risk_challenger_decisions_total"
    assert metric_total(text, matrix) == n
    assert metric_total(text, "credit_risk_challenger_probability_delta_count") == n
    assert metric_total(text, "credit_risk_challenger_dropped_rows_total") == 0

    table = ds.dataset(log, format="parquet").to_table().to_pylist()
    assert len(table) == n
    assert {r["challenger_model"] for r in table} == {challenger_tag}
    assert sorted(r["probability"] for r in table) == pytest.approx(
        sorted(float(d["probability"]) for d in decisions)  # type: ignore[arg-type]
    )
    assert any(r["challenger_probability"] != r["probability"] for r in table)
    for champion_status in ("APPROVED", "MAYBE", "DECLINED"):  # /metrics agrees with records
        for challenger_status in ("APPROVED", "MAYBE", "DECLINED"):
            recorded = sum(
                r["status"] == champion_status and r["challenger_status"] == challenger_status
                for r in table
            )
            labels = {"champion_status": champion_status, "challenger_status": challenger_status}
            assert metric_total(text, matrix, **labels) == recorded
    delta_sum = sum(r["challenger_probability"] - r["probability"] for r in table)
    assert metric_total(text, "credit_risk_challenger_probability_delta_sum") == pytest.approx(
        delta_sum, abs=1e-3
    )
