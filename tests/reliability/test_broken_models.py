"""A broken or mismatched model stops `bentoml serve` with one clear line; rollback both ways."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest

from export.pipeline import ExportSummary, run_export
from harness.process import PROJECT_ROOT, free_port, served, stop_all
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


def _start(tag: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "bentoml", "serve", "service.app:CreditRiskService",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env={**os.environ, "CREDIT_RISK_MODEL_TAG": tag},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


def _exit_and_output(process: subprocess.Popen[str], port: int) -> tuple[int, bool, str]:
    """Waits (90 s at most) for the server to give up; its exit code, whether it ever answered
    /readyz with 200, and everything it printed."""
    started = time.monotonic()
    ready = False
    while process.poll() is None and time.monotonic() - started < 90:
        with contextlib.suppress(httpx.HTTPError):
            ready |= httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        time.sleep(0.2)
    if process.poll() is None:
        process.kill()
    output = process.communicate(timeout=30)[0]
    return process.returncode, ready, output


def test_broken_models_refuse_to_start_with_one_clear_line(exported: ExportSummary) -> None:
    """Every broken case is started at once (independent servers, each on its own port)."""
    cases = _broken_tags(exported)
    started = {case: _start(tag) for case, (tag, _) in cases.items()}
    outcomes = {case: _exit_and_output(*started[case]) for case in cases}
    for case, (code, ready, output) in outcomes.items():
        expected = cases[case][1]
        assert code == 2, (case, code, output[-2000:])
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
    with ExitStack() as stack, ThreadPoolExecutor(len(steps)) as pool:
        # The three configurations are independent servers: started together, checked in turn.
        servers = list(
            pool.map(
                lambda n: stack.enter_context(
                    served(
                        {"CREDIT_RISK_WORKERS": "1", **steps[n][2]},
                        log_path=tmp_path / f"serve-{n}.log",
                    )
                ),
                range(len(steps)),
            )
        )
        for server, (step, summary, _) in zip(servers, steps, strict=True):
            info = httpx.get(f"{server.url}/info", timeout=30).json()
            assert (info["model"], info["native_model"]) == (summary.onnx_tag, summary.native_tag)
            answers = httpx.post(f"{server.url}/classify_batch", json=sample, timeout=60).json()
            assert {answer["model"] for answer in answers} == {summary.onnx_tag}, step
            got = [answer["probability"] for answer in answers]
            np.testing.assert_allclose(got, expected[summary.onnx_tag], atol=1e-6, err_msg=step)
            single = httpx.post(f"{server.url}/classify", json=sample[7], timeout=30).json()
            assert abs(single["probability"] - expected[summary.onnx_tag][7]) < 1e-6, step
        stop_all([server.process for server in servers])  # together, not in turn
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
