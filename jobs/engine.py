"""The model as bytes for executors, and the engines built from them.

The driver reads the ONNX file, the native booster and their metadata from the BentoML store by
tag (`ModelBundle.read`); Spark broadcasts the bundle, so executors never need a model store.
An executor's Python worker builds the engines from it once (jobs.task keeps them per worker).

The scoring settings are the server's (service.settings, `CREDIT_RISK_*`: the decision
thresholds and the bulk engine routing), read on the driver and carried in the bundle, so the
job decides as a server started in the same environment does.
"""

from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from features.distributions import METADATA_KEY, from_metadata, medians
from features.reasons import MatrixReasonCoder, ReasonCoder
from features.thresholds import Thresholds
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
from service.settings import ServiceSettings


@dataclass(frozen=True)
class ScoringSettings:
    """The server's settings that decide a row's answer, as the driver read them."""

    thresholds: Thresholds
    xgboost_min_rows: int  # chunks from this many rows go to native XGBoost, smaller to ONNX
    chunk_rows: int  # bulk input runs in chunks of this

    @classmethod
    def of(cls, settings: ServiceSettings) -> "ScoringSettings":
        return cls(
            thresholds=Thresholds(settings.maybe_threshold, settings.declined_threshold),
            xgboost_min_rows=settings.bulk_xgboost_min_rows,
            chunk_rows=settings.bulk_chunk_rows,
        )


@dataclass(frozen=True)
class ModelBundle:
    """Both engines of one model tag, as bytes plus the store's records of them."""

    onnx: StoredModel
    onnx_bytes: bytes
    native: StoredModel
    native_raw: bytes
    scoring: ScoringSettings

    @classmethod
    def read(cls, onnx_tag: str, settings: ServiceSettings | None = None) -> "ModelBundle":
        """From the model store (driver side), with the scoring settings of `settings` (the
        environment's by default); raises ModelLoadError naming the tag."""
        onnx = get_stored_model(onnx_tag)
        native, raw = booster_raw(str(onnx.metadata["native_tag"]))
        onnx_bytes = onnx_file(onnx).read_bytes()
        scoring = ScoringSettings.of(settings or _environment_settings())
        return cls(onnx=onnx, onnx_bytes=onnx_bytes, native=native, native_raw=raw, scoring=scoring)

    @property
    def tag(self) -> str:
        return self.onnx.tag

    @property
    def thresholds(self) -> Thresholds:
        return self.scoring.thresholds

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
            large_min_rows=self.scoring.xgboost_min_rows,
            chunk_rows=self.scoring.chunk_rows,
        )


def _environment_settings() -> ServiceSettings:
    """The server's settings from this environment; a bad value fails like a bad model tag,
    with one line naming the setting."""
    try:
        return ServiceSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"CREDIT_RISK_{'_'.join(map(str, item['loc'])).upper()}: {item['msg']}"
            if item["loc"]
            else item["msg"]
            for item in error.errors(include_url=False)
        )
        raise ModelLoadError(f"scoring settings: {problems}") from error


class BundleSource(Protocol):
    """What the scoring function holds: a Spark broadcast of the bundle."""

    @property
    def value(self) -> ModelBundle: ...
