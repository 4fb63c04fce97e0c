"""MLServer 1.7.1 with its XGBoost runtime, as a benchmark baseline, at its best setting here:
inference in the server process (`parallel_workers: 0`) with adaptive batching (64 rows,
2 ms), clients sending pre-encoded feature vectors as Open Inference Protocol tensors.

MLServer 1.7.1 fails with current uvloop ("There is no current event loop"), so it lives in a
virtual environment of its own with `uvloop<0.21`, created on first use
(`.venv-mlserver/`, ignored by git).
"""

import json
import subprocess
import sys
from pathlib import Path

import bentoml

from harness.process import PROJECT_ROOT, free_port

VENV = PROJECT_ROOT / ".venv-mlserver"
PACKAGES = ("mlserver==1.7.1", "mlserver-xgboost==1.7.1", "uvloop<0.21")
MODEL_NAME = "credit-risk"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
READY_PATH = "/v2/health/ready"


def ensure_venv() -> Path:
    """The `mlserver` executable, installing it into its own venv the first time (minutes)."""
    executable = VENV / "bin" / "mlserver"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *PACKAGES], check=True)
    return executable


def write_repository(native_tag: str, folder: Path) -> Path:
    """A model repository serving the stored native booster under MODEL_NAME."""
    model_dir = folder / MODEL_NAME
    model_dir.mkdir(parents=True, exist_ok=True)
    booster = bentoml.xgboost.load_model(native_tag)
    booster.save_model(str(model_dir / "model.json"))
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_xgboost.XGBoostModel",
                "parameters": {"uri": "./model.json"},
                "max_batch_size": 64,
                "max_batch_time": 0.002,
            }
        )
    )
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "parallel_workers": 0,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "debug": False,
            }
        )
    )
    return folder


def command(folder: Path) -> list[str]:
    """`mlserver start` on the repository; the HTTP port comes from MLSERVER_HTTP_PORT."""
    return [str(ensure_venv()), "start", str(folder)]


def infer_body(features: list[float]) -> dict[str, object]:
    """One pre-encoded applicant as an Open Inference Protocol request."""
    return {
        "inputs": [
            {"name": "input-0", "shape": [1, len(features)], "datatype": "FP32", "data": features}
        ]
    }
