"""harness.process: each served process gets a BENTOML_HOME of its own for its metrics."""

from pathlib import Path

import httpx
import pytest

from harness.process import ServedProcess, own_bentoml_home, served
from tests.metrics_text import metric_total, scrape_until

pytestmark = pytest.mark.slow  # starts real server processes

DIRECT_CALLS = "credit_risk_model_seconds_count"


def calls(metrics: str) -> float:
    return metric_total(metrics, DIRECT_CALLS)


def test_own_home_shares_the_store_but_not_the_metrics_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    for name in ("models", "bentos", "prometheus_multiproc_dir"):
        (shared / name).mkdir(parents=True)
    (shared / "models" / "kept").write_text("model")
    with own_bentoml_home(shared) as home:
        assert sorted(p.name for p in home.iterdir()) == ["bentos", "models"]
        assert (home / "models" / "kept").read_text() == "model"
    assert not home.exists()
    assert (shared / "models" / "kept").read_text() == "model"  # only the links were removed
    assert (shared / "prometheus_multiproc_dir").is_dir()


def test_own_home_links_a_store_that_does_not_exist_yet(tmp_path: Path) -> None:
    """`make serve` on an empty store exports into it from inside the served command."""
    shared = tmp_path / "empty"
    with own_bentoml_home(shared) as home:
        (home / "models" / "saved").write_text("model")
    assert (shared / "models" / "saved").read_text() == "model"


def test_a_second_server_on_the_same_store_leaves_the_first_ones_metrics(
    server: ServedProcess, exported, records, tmp_path: Path
) -> None:
    """BentoML 1.4 empties $BENTOML_HOME/prometheus_multiproc_dir when a server starts; with a
    shared home the running server's counts dropped to those of its newest workers (CI saw 0)."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for record in records[:20]:
            assert client.post("/classify", json=record).status_code == 200
        before = calls(scrape_until(server.url, lambda text: calls(text) >= 20))
        env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": "1"}
        with served(env, log_path=tmp_path / "second.log") as second:
            assert httpx.post(f"{second.url}/classify", json=records[0]).status_code == 200
        assert client.post("/classify", json=records[0]).status_code == 200
        after = calls(scrape_until(server.url, lambda text: calls(text) > before))
    assert before >= 20
    assert after >= before + 1, (before, after)
