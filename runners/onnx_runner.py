"""ONNX Runtime execution of the exported credit-risk model."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from runners.base import FeatureMatrix, Probabilities, StoredModelRunner
from runners.device import DeviceRequest, resolve_device
from runners.model_store import ModelLoadError, StoredModel, get_stored_model, onnx_file

# The versions whose compiled session (`InferenceSession._sess.run`) this runner calls directly
# (pyproject.toml pins onnxruntime to it); on any other version, e.g. the GPU image's
# onnxruntime-gpu (bentofile.gpu.yaml: no 1.32.0 build exists), it steps aside to `run`.
TESTED_ORT = ("1.32.0",)
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


@dataclass
class OnnxRunner(StoredModelRunner):
    """One ORT session; threads are set from config so workers x threads fits the cores."""

    session: ort.InferenceSession = field(kw_only=True)
    engine: str = "onnx"

    @classmethod
    def load(cls, tag: str, *, threads: int = 1, device: DeviceRequest = "auto") -> "OnnxRunner":
        stored = get_stored_model(tag)
        return cls._build(stored, str(onnx_file(stored)), threads=threads, device=device)

    @classmethod
    def from_bytes(
        cls,
        stored: StoredModel,
        model_bytes: bytes,
        *,
        threads: int = 1,
        device: DeviceRequest = "auto",
    ) -> "OnnxRunner":
        """The same runner from the ONNX file's bytes (read elsewhere, e.g. shipped to a Spark
        executor that has no model store); `stored` is the model's record from the store."""
        return cls._build(stored, model_bytes, threads=threads, device=device)

    @classmethod
    def _build(
        cls, stored: StoredModel, source: str | bytes, *, threads: int, device: DeviceRequest
    ) -> "OnnxRunner":
        choice = resolve_device(
            device, "onnxruntime", CUDA_PROVIDER in ort.get_available_providers(), stored.tag
        )
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if choice.device == "cuda" else [CPU_PROVIDER]
        try:
            session = ort.InferenceSession(source, session_options(threads), providers=providers)
        except Exception as error:  # ORT raises several unrelated types for a bad file
            raise ModelLoadError(f"cannot load ONNX model {stored.tag}: {error}") from error
        runner = cls(stored=stored, session=session, device=choice.device)
        runner._check_signature()
        return runner

    def __post_init__(self) -> None:
        self._input_name = self.session.get_inputs()[0].name
        self._output_names = [self.session.get_outputs()[1].name]
        # The compiled session under ORT's Python wrapper: the wrapper re-checks input names
        # and options on every call, 5 µs of a 23 µs one-row call (python -m
        # bench.private_hooks). Inputs here are always the one validated float32 matrix.
        # tests/runners/test_onnx_runner.py guards the API; other versions use `run`.
        self._run = direct_run(self.session, ort.__version__)
        self._run_options = ort.RunOptions()

    def _check_signature(self) -> None:
        """The graph must take exactly the stored feature count and give two class probabilities."""
        shape = self.session.get_inputs()[0].shape
        width = shape[1] if len(shape) == 2 else None
        if width != self.n_features:
            raise ModelLoadError(
                f"ONNX model {self.tag} takes {width} features but its metadata lists "
                f"{self.n_features}"
            )
        if len(self.session.get_outputs()) < 2:
            raise ModelLoadError(f"ONNX model {self.tag} has no probabilities output")
        parity = float(self.stored.metadata.get("parity_max_abs_diff", float("nan")))
        tolerance = float(self.stored.metadata.get("parity_tolerance", 0.0))
        if not parity <= tolerance:
            raise ModelLoadError(
                f"ONNX model {self.tag} records parity error {parity:.3g} above its tolerance "
                f"{tolerance:g}; refusing to serve it"
            )

    def predict(self, features: FeatureMatrix) -> Probabilities:
        (probabilities,) = self._run(
            self._output_names, {self._input_name: features}, self._run_options
        )
        return np.ascontiguousarray(probabilities[:, 1])


def session_options(threads: int) -> ort.SessionOptions:
    """`threads` for one call's nodes, one call at a time."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Fatal only: ORT logs a failed run to stderr with the offending input ("idx=123456 must be
    # within ..."); the error reaches Python as an exception anyway.
    options.log_severity_level = 4
    return options


def direct_run(session: ort.InferenceSession, version: str) -> Any:
    """`run(output_names, feeds, run_options)`: the compiled session's on a tested version of
    ONNX Runtime, else the public wrapper's (same arguments, same answer, a few µs more)."""
    compiled = getattr(session, "_sess", None)
    if version in TESTED_ORT and callable(getattr(compiled, "run", None)):
        return compiled.run  # type: ignore[union-attr]
    return session.run
