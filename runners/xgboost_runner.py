"""Native XGBoost execution (`inplace_predict`), for comparison and as a fallback engine."""

from dataclasses import dataclass, field

import numpy as np
import xgboost as xgb

from runners.base import FeatureMatrix, Probabilities, StoredModelRunner
from runners.device import DeviceRequest, resolve_device
from runners.model_store import StoredModel, booster_from_raw, load_booster


def xgboost_supports_cuda() -> bool:
    return bool(xgb.build_info().get("USE_CUDA", False))


@dataclass
class XgboostRunner(StoredModelRunner):
    booster: xgb.Booster = field(kw_only=True)
    engine: str = "xgboost"

    @classmethod
    def load(cls, tag: str, *, threads: int = 1, device: DeviceRequest = "auto") -> "XgboostRunner":
        stored, booster = load_booster(tag)
        return cls._build(stored, booster, threads=threads, device=device)

    @classmethod
    def from_bytes(
        cls,
        stored: StoredModel,
        raw: bytes,
        *,
        threads: int = 1,
        device: DeviceRequest = "auto",
    ) -> "XgboostRunner":
        """The same runner from the booster's raw bytes (`Booster.save_raw()`, shipped e.g. to
        a Spark executor that has no model store); `stored` is the model's record."""
        return cls._build(stored, booster_from_raw(raw, stored.tag), threads=threads, device=device)

    @classmethod
    def _build(
        cls, stored: StoredModel, booster: xgb.Booster, *, threads: int, device: DeviceRequest
    ) -> "XgboostRunner":
        choice = resolve_device(device, "xgboost", xgboost_supports_cuda(), stored.tag)
        booster.set_param({"nthread": threads, "device": choice.device})
        return cls(stored=stored, booster=booster, device=choice.device)

    def predict(self, features: FeatureMatrix) -> Probabilities:
        return np.asarray(self.booster.inplace_predict(features), dtype=np.float32)
