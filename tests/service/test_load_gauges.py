"""The load and identity gauges on a real server's /metrics: the model-info labels say what
/info says, every load gauge has a series from the start, and a worker that dies and is
respawned adds one to the worker starts (what the CreditRiskWorkerRestarted alert reads)."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from service import __version__
from tests.metrics_text import metric_total

pytestmark = pytest.mark.slow

LOAD_GAUGES = (
    "credit_risk_admission_lag_seconds",
    "credit_risk_admitted_fraction",
    "credit_risk_batch_queue_rows",
    "credit_risk_bulk_bytes_in_flight",
)


@pytest.fixture
def own_server(exported: ExportSummary, tmp_path: Path) -> Iterator[ServedProcess]:
    """A server of its own: this test kills one of its workers."""
    env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": "2"}
    with served(env, log_path=tmp_path / "serve.log", extra_args=("--production",)) as server:
        yield server


def _metrics(server: ServedProcess) -> str:
    return httpx.get(f"{server.url}/metrics", timeout=30).text


def _starts_reach(server: ServedProcess, wanted: int, within_s: float = 90) -> float:
    """The worker starts counter once it reaches `wanted`, or its last reading at the deadline."""
    deadline = time.monotonic() + within_s
    starts = 0.0
    while time.monotonic() < deadline:
        try:
            starts = metric_total(_metrics(server), "credit_risk_worker_starts_total")
        except httpx.TransportError:
            starts = 0.0  # a dead worker's connections
        if starts >= wanted:
            break
        time.sleep(0.5)
    return starts


def test_gauges_describe_the_server_and_count_worker_starts(own_server: ServedProcess) -> None:
    info = httpx.get(f"{own_server.url}/info", timeout=30).json()
    text = _metrics(own_server)
    labels = {
        "model": info["model"], "engine": info["engine"], "provider": info["provider"],
        "batching": info["batching"], "bulk_engine": info["bulk_engine"],
        "native_model": info["native_model"], "version": __version__,
    }  # fmt: skip
    assert metric_total(text, "credit_risk_model_info", **labels) == 1
    for name in LOAD_GAUGES:
        assert f"# TYPE {name} gauge" in text and f"\n{name}" in text, name
    assert metric_total(text, "credit_risk_admitted_fraction") == 1  # idle: admits everything
    # Readiness needs one worker; the other may still be starting.
    assert _starts_reach(own_server, 2) == 2

    workers = [
        child
        for child in psutil.Process(own_server.process.pid).children(recursive=True)
        if "_bentoml_impl.worker.service" in " ".join(child.cmdline())
    ]
    assert len(workers) == 2
    os.kill(workers[0].pid, signal.SIGKILL)  # circus respawns it outside a container
    assert _starts_reach(own_server, 3) == 3
