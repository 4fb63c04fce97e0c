"""`bentoml build` packs a bento from bentofile.yaml that `bentoml serve <bento>` serves."""

import re
import subprocess
import sys
from pathlib import Path

import bentoml
import httpx
import pytest
import yaml

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, served
from service.schemas import APPLICANT_EXAMPLE

pytestmark = pytest.mark.slow  # starts real server processes


def _build(bentofile: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", bentofile, "--output", "tag"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"__tag__:(\S+)", result.stdout) or re.search(
        r"(credit_risk\S*:\w+)", result.stdout
    )
    assert match, result.stdout
    return match.group(1)


def test_built_bento_serves(exported: ExportSummary, tmp_path: Path) -> None:
    tag = _build("bentofile.yaml")
    bento = bentoml.get(tag)
    packed_models = {str(m.tag) for m in bento.info.all_models}
    latest = str(bentoml.models.get("credit_risk_onnx:latest").tag)
    assert latest in packed_models
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        tag,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    # Serve from an unrelated directory: the bento must carry its own code.
    with served(log_path=tmp_path / "bento.log", command=command, cwd=tmp_path) as server:
        answer = httpx.post(f"{server.url}/classify", json=APPLICANT_EXAMPLE, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == latest
        assert httpx.get(f"{server.url}/info").json()["provider"] == "cpu"


@pytest.mark.parametrize("bentofile", ["bentofile.gpu.yaml"])
def test_gpu_bentofile_builds_with_cuda_settings(exported: ExportSummary, bentofile: str) -> None:
    tag = _build(bentofile)
    path = Path(bentoml.get(tag).path)
    info = yaml.safe_load((path / "bento.yaml").read_text())
    dockerfile = (path / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:\S+", dockerfile, re.M), dockerfile[:500]
    envs = {e["name"]: e["value"] for e in info["envs"]}
    assert envs["CREDIT_RISK_DEVICE"] == "cuda"
