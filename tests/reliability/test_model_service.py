"""batching=bentoml: a model-service call that does not answer in time is a 503, not a hang."""

from pathlib import Path

import httpx
import pytest

from harness.process import served

pytestmark = pytest.mark.slow  # starts real server processes


def test_a_late_model_service_answer_is_a_503_with_retry_after(
    slow_model_tag: str, records, tmp_path: Path
) -> None:
    """The slow model takes ~1.2 s a call; the deadline is 0.3 s. Without it the request would
    wait for the model (or, for a stuck call, for the 30 s request timeout)."""
    env = {
        "CREDIT_RISK_MODEL_TAG": slow_model_tag,
        "CREDIT_RISK_BATCHING": "bentoml",
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_MODEL_SERVICE_TIMEOUT_S": "0.3",
        "CREDIT_RISK_BENTOML_MAX_LATENCY_MS": "60000",  # BentoML's dispatcher must not shed it
    }
    with (
        served(env, log_path=tmp_path / "serve.log") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for _ in range(2):
            answer = client.post("/classify", json=records[0])
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert "model service did not answer within 0.3s" in answer.json()["error"]
        assert client.get("/readyz").status_code == 200
