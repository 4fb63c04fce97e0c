"""Builds the configured engine for a served model tag."""

from typing import Literal

from runners.base import Runner
from runners.device import DeviceRequest
from runners.model_store import get_stored_model
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

Engine = Literal["onnx", "xgboost"]


def native_tag_of(onnx_tag: str) -> str:
    """The native XGBoost model an ONNX model was converted from (one tag serves both)."""
    return str(get_stored_model(onnx_tag).metadata["native_tag"])


def load_runner(engine: Engine, onnx_tag: str, *, threads: int, device: DeviceRequest) -> Runner:
    if engine == "onnx":
        return OnnxRunner.load(onnx_tag, threads=threads, device=device)
    return XgboostRunner.load(native_tag_of(onnx_tag), threads=threads, device=device)
