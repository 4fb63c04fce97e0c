"""The model as bytes for executors, and the engines built from them.

The driver reads the ONNX file, the native booster and their metadata from the BentoML store by
tag (`ModelBundle.read`); Spark broadcasts the bundle, so executors never need a model store.
An executor's Python worker builds the engines from it once (jobs.task keeps them per worker).
"""

from dataclasses import dataclass
from typing import Any, Protocol

from features.distributions import METADATA_KEY, from_metadata, medians
from features.reasons import MatrixReasonCoder, ReasonCoder
from runners.bulk import ChunkedPredictor
from runners.explainer import Explainer
from runners.model_store import (
    ModelLoadError,
    StoredModel,
    booster_raw,
    get_stored_model,
    onnx_file,
)
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

# As on the server (CREDIT_RISK_BULK_XGBOOST_MIN_ROWS, CREDIT_RISK_BULK_CHUNK_ROWS): chunks
# below 256 rows go to ONNX Runtime, larger ones to native XGBoost.
XGBOOST_MIN_ROWS = 256
CHUNK_ROWS = 65_536
DEFAULT_THRESHOLDS = {"maybe": 0.3, "declined": 0.5}


@dataclass(frozen=True)
class ModelBundle:
    """Both engines of one model tag, as bytes plus the store's records of them."""

    onnx: StoredModel
    onnx_bytes: bytes
    native: StoredModel
    native_raw: bytes

    @classmethod
    def read(cls, onnx_tag: str) -> "ModelBundle":
        """From the model store (driver side); raises ModelLoadError naming the tag."""
        onnx = get_stored_model(onnx_tag)
        native, raw = booster_raw(str(onnx.metadata["native_tag"]))
        onnx_bytes = onnx_file(onnx).read_bytes()
        return cls(onnx=onnx, onnx_bytes=onnx_bytes, native=native, native_raw=raw)

    @property
    def tag(self) -> str:
        return self.onnx.tag

    @property
    def thresholds(self) -> tuple[float, float]:
        """(maybe, declined) as the export recorded them; the server's defaults otherwise."""
        recorded: dict[str, Any] = {
            **DEFAULT_THRESHOLDS,
            **self.onnx.metadata.get("thresholds", {}),
        }
        return float(recorded["maybe"]), float(recorded["declined"])

    def explaining(self) -> tuple[Explainer, MatrixReasonCoder]:
        """The native twin's explainer and the reason coder (training medians stored with the
        model); raises ModelLoadError for a model exported without training distributions."""
        stored = self.onnx.metadata.get(METADATA_KEY)
        if stored is None:
            raise ModelLoadError(
                f"model {self.tag} was exported without training distributions, so it cannot "
                "give reasons; export it again (python -m export)"
            )
        names = self.onnx.feature_names
        explainer = Explainer.from_bytes(self.native_raw, names, threads=1, tag=self.native.tag)
        coder = ReasonCoder(medians(from_metadata(stored))).matrix_coder(names)
        return explainer, coder

    def predictor(self) -> ChunkedPredictor:
        """ONNX Runtime and native XGBoost, one thread each (a Spark task is one core)."""
        return ChunkedPredictor(
            small=OnnxRunner.from_bytes(self.onnx, self.onnx_bytes, threads=1),
            large=XgboostRunner.from_bytes(self.native, self.native_raw, threads=1),
            large_min_rows=XGBOOST_MIN_ROWS,
            chunk_rows=CHUNK_ROWS,
        )


class BundleSource(Protocol):
    """What the scoring function holds: a Spark broadcast of the bundle."""

    @property
    def value(self) -> ModelBundle: ...
