"""Writes the trained artifacts to the BentoML model store (honours BENTOML_HOME).

Every save creates a new version; `latest` moves to it and older versions stay loadable by tag,
which is what a rollback serves.
"""

from typing import Any

import bentoml
import onnx
import xgboost as xgb
from sklearn.feature_extraction import DictVectorizer

NATIVE_MODEL_NAME = "credit_risk_model"
ONNX_MODEL_NAME = "credit_risk_onnx"
ONNX_FILE_NAME = "model.onnx"
DEFAULT_THRESHOLDS: dict[str, float] = {"maybe": 0.3, "declined": 0.5}


def save_native_model(
    booster: xgb.Booster, vectorizer: DictVectorizer, metadata: dict[str, Any]
) -> bentoml.Model:
    return bentoml.xgboost.save_model(
        NATIVE_MODEL_NAME,
        booster,
        custom_objects={"dict_vectorizer": vectorizer},
        metadata=metadata,
        signatures={"predict": {"batchable": True}},
    )


def save_onnx_model(model: onnx.ModelProto, metadata: dict[str, Any]) -> bentoml.Model:
    with bentoml.models.create(ONNX_MODEL_NAME, metadata=metadata) as stored:
        onnx.save_model(model, stored.path_of(ONNX_FILE_NAME))
    return bentoml.models.get(stored.tag)


def has_onnx_model() -> bool:
    try:
        return bool(bentoml.models.list(ONNX_MODEL_NAME))
    except bentoml.exceptions.NotFound:
        return False
