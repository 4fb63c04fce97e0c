"""A key file the server cannot use stops `bentoml serve` at start with one line (exit 2), like
a broken model; a worker that cannot start says why; and `make serve` passes HTTPS options
through to BentoML."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, free_port, own_bentoml_home, stop
from service.logs import WITHHELD
from tests.security.conftest import PARTNER_KEY


@pytest.mark.slow
def test_an_unusable_key_file_stops_the_server_with_one_line(tmp_path: Path) -> None:
    malformed = tmp_path / "api-keys"
    malformed.write_text(f"# clients\npartner {PARTNER_KEY}\nwebform\n")
    missing = tmp_path / "no-such-file"
    serve = [sys.executable, "-m", "bentoml", "serve", "service.app:CreditRiskService"]
    runs = {
        path: subprocess.Popen(
            [*serve, "--host", "127.0.0.1", "--port", str(free_port())],
            cwd=PROJECT_ROOT,
            env={**os.environ, "CREDIT_RISK_API_KEYS_FILE": str(path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in (malformed, missing)
    }
    outputs = {}
    for path, process in runs.items():
        try:
            outputs[path] = process.communicate(timeout=120)[0]
        finally:
            process.kill()
        assert process.returncode == 2, outputs[path][-2000:]
    (line,) = [ln for ln in outputs[malformed].splitlines() if "cannot serve" in ln]
    assert line == (
        f"credit-risk: cannot serve: {malformed} line 3: expected `NAME KEY` or `NAME sha256:HEX`"
    )
    assert PARTNER_KEY not in outputs[malformed]
    assert f"cannot serve: cannot read the API key file {missing}" in outputs[missing]
    assert "Traceback" not in outputs[malformed] + outputs[missing]


def test_make_serve_passes_the_certificate_to_bentoml() -> None:
    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", "-o", "install", "-o", "model", *args],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    dry = make("-n", "serve", "SSL_CERT=/certs/tls.crt", "SSL_KEY=/certs/tls.key")
    assert dry.returncode == 0, dry.stderr
    assert '--ssl-certfile "/certs/tls.crt" --ssl-keyfile "/certs/tls.key"' in dry.stdout
    assert '--ssl-ciphers "ECDHE+AESGCM:ECDHE+CHACHA20"' in dry.stdout  # AEAD only on TLS 1.2
    assert "--ssl" not in make("-n", "serve").stdout
    half = make("serve", "SSL_CERT=/certs/tls.crt")
    assert half.returncode == 2 and "needs both SSL_CERT and SSL_KEY" in half.stderr


@pytest.mark.slow
def test_a_worker_that_cannot_start_says_why(exported: ExportSummary, tmp_path: Path) -> None:
    """Issue 22: BentoML's tracing with an exporter that is not installed stops every worker at
    start; the log names the missing module instead of withholding the message."""
    config = tmp_path / "bentoml.yaml"
    config.write_text(
        "services:\n  credit_risk:\n    tracing:\n      exporter_type: zipkin\n"
        "      sample_rate: 1.0\n      zipkin:\n        endpoint: http://127.0.0.1:9/api/v2/spans\n"
    )
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "BENTOML_CONFIG": str(config),
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
    }
    with own_bentoml_home(Path(os.environ["BENTOML_HOME"])) as home, open(log, "wb") as out:
        argv = [sys.executable, "-m", "bentoml", "serve", "service.app:CreditRiskService"]
        process = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", str(free_port())],
            cwd=PROJECT_ROOT,
            env={**env, "BENTOML_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "No module named" not in log.read_text():
                if process.poll() is not None:
                    break
                time.sleep(0.5)
        finally:
            stop(process)
    text = log.read_text(errors="replace")
    assert "ModuleNotFoundError: No module named 'opentelemetry.exporter" in text, text[-3000:]
    assert f"ModuleNotFoundError: {WITHHELD}" not in text
