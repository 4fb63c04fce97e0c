"""A broken or mismatched model stops `bentoml serve` with one clear line; rollback both ways."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest

from export.pipeline import ExportSummary, run_export
from harness.process import PROJECT_ROOT, free_port, served
from tests.reference import reference_probabilities

pytestmark = pytest.mark.slow  # starts real server processes


def _broken_copy(
    exported: ExportSummary, name: str, *, onnx_bytes: bytes | None = None, **metadata: object
) -> str:
    """A new model in the store: the exported ONNX model with its file or metadata damaged."""
    good = bentoml.models.get(exported.onnx_tag)
    with bentoml.models.create(name, metadata={**good.info.metadata, **metadata}) as model:
        target = Path(model.path_of("model.onnx"))
        if onnx_bytes is None:
            shutil.copy(Path(good.path) / "model.onnx", target)
        else:
            target.write_bytes(onnx_bytes)
    return str(model.tag)


def _broken_tags(exported: ExportSummary) -> dict[str, tuple[str, str]]:
    names = bentoml.models.get(exported.onnx_tag).info.metadata["feature_names"]
    return {
        "missing tag": ("credit_risk_onnx:doesnotexist", "not in the model store"),
        "corrupt onnx": (_broken_copy(exported, "broken_corrupt", onnx_bytes=b"\x00not an onnx graph" * 50), "cannot load ONNX model"),
        "feature count mismatch": (_broken_copy(exported, "broken_features", feature_names=names[:-1], n_features=len(names) - 1), "takes 29 features but its metadata lists 28"),
        "parity above tolerance": (_broken_copy(exported, "broken_parity", parity_max_abs_diff=1e-3), "parity error"),
    }  # fmt: skip


def test_broken_models_refuse_to_start_with_one_clear_line(
    exported: ExportSummary, tmp_path: Path
) -> None:
    for case, (tag, expected) in _broken_tags(exported).items():
        port = free_port()
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                "service.app:CreditRiskService",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "CREDIT_RISK_MODEL_TAG": tag},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = False
        while process.poll() is None and time.monotonic() - started < 90:
            with contextlib.suppress(httpx.HTTPError):
                ready |= httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            time.sleep(0.2)
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=30)[0]
        assert process.returncode == 2, (case, process.returncode, output[-2000:])
        assert not ready, case
        errors = [
            line for line in output.splitlines() if line.startswith("credit-risk: cannot serve:")
        ]
        assert len(errors) == 1 and expected in errors[0], (case, output[-2000:])
        assert "Traceback" not in output, (case, output[-2000:])


def test_rollback_and_forward_again_by_configuration(
    exported: ExportSummary, records, tmp_path: Path
) -> None:
    """A newer export (another seed, so really another model) is `latest`; the operator rolls
    back to the first by CREDIT_RISK_MODEL_TAG, then forward again, with no code change. Each
    time /info names the served model and every answer is that model's own prediction."""
    newer = run_export(seed=2)
    sample = records[:300]
    expected = {
        summary.onnx_tag: reference_probabilities(summary, sample) for summary in (exported, newer)
    }
    assert np.abs(expected[exported.onnx_tag] - expected[newer.onnx_tag]).max() > 1e-3
    steps = [
        ("latest (the newer export)", newer, {}),
        ("rolled back", exported, {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}),
        ("forward again", newer, {"CREDIT_RISK_MODEL_TAG": newer.onnx_tag}),
    ]
    for step, summary, env in steps:
        with served({"CREDIT_RISK_WORKERS": "1", **env}, log_path=tmp_path / "serve.log") as server:
            info = httpx.get(f"{server.url}/info", timeout=30).json()
            assert (info["model"], info["native_model"]) == (summary.onnx_tag, summary.native_tag)
            answers = httpx.post(f"{server.url}/classify_batch", json=sample, timeout=60).json()
            assert {answer["model"] for answer in answers} == {summary.onnx_tag}, step
            got = [answer["probability"] for answer in answers]
            np.testing.assert_allclose(got, expected[summary.onnx_tag], atol=1e-6, err_msg=step)
            single = httpx.post(f"{server.url}/classify", json=sample[7], timeout=30).json()
            assert abs(single["probability"] - expected[summary.onnx_tag][7]) < 1e-6, step
    print(json.dumps({"served": [s.onnx_tag for _, s, _ in steps]}))


@pytest.mark.parametrize("device", ["cuda"])
def test_cuda_requested_without_gpu_is_a_clear_start_up_error(
    exported: ExportSummary, device: str
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "service.app:CreditRiskService",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
            "CREDIT_RISK_DEVICE": device,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "credit-risk: cannot serve: device=cuda requested" in result.stderr
