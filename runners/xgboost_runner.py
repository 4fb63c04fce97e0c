"""Native XGBoost execution (`inplace_predict`), for comparison and as a fallback engine."""

from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from runners.base import FeatureMatrix, Probabilities
from runners.device import DeviceRequest, cuda_device_count, log_device_choice, select_device
from runners.model_store import StoredModel, load_booster


def xgboost_supports_cuda() -> bool:
    return bool(xgb.build_info().get("USE_CUDA", False))


@dataclass
class XgboostRunner:
    stored: StoredModel
    booster: xgb.Booster
    device: str
    engine: str = "xgboost"

    @classmethod
    def load(cls, tag: str, *, threads: int = 1, device: DeviceRequest = "auto") -> "XgboostRunner":
        stored, booster = load_booster(tag)
        choice = select_device(
            device,
            engine="xgboost",
            engine_supports_cuda=xgboost_supports_cuda(),
            gpu_count=cuda_device_count() if device != "cpu" else 0,
        )
        log_device_choice("xgboost", stored.tag, choice)
        booster.set_param({"nthread": threads, "device": choice.device})
        return cls(stored=stored, booster=booster, device=choice.device)

    @property
    def tag(self) -> str:
        return self.stored.tag

    @property
    def n_features(self) -> int:
        return len(self.stored.feature_names)

    def predict(self, features: FeatureMatrix) -> Probabilities:
        return np.asarray(self.booster.inplace_predict(features), dtype=np.float32)
