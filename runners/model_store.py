"""Reads stored models by tag from the BentoML model store (honours BENTOML_HOME)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import xgboost as xgb

ONNX_FILE_NAME = "model.onnx"


class ModelLoadError(RuntimeError):
    """A model tag is missing, unreadable or inconsistent; the message says which and why."""


@dataclass(frozen=True)
class StoredModel:
    tag: str
    path: Path
    metadata: dict[str, Any]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["feature_names"])


def get_stored_model(tag: str) -> StoredModel:
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as error:
        raise ModelLoadError(f"model {tag!r} is not in the model store: {error}") from error
    metadata = dict(model.info.metadata)
    if "feature_names" not in metadata:
        raise ModelLoadError(f"model {model.tag} has no feature_names metadata")
    return StoredModel(tag=str(model.tag), path=Path(model.path), metadata=metadata)


def onnx_file(stored: StoredModel) -> Path:
    path = stored.path / ONNX_FILE_NAME
    if not path.is_file():
        raise ModelLoadError(f"model {stored.tag} has no {ONNX_FILE_NAME}")
    return path


def load_booster(tag: str) -> tuple[StoredModel, xgb.Booster]:
    stored = get_stored_model(tag)
    try:
        booster = bentoml.xgboost.load_model(tag)
    except Exception as error:  # any failure to deserialise is a load error with the tag named
        raise ModelLoadError(f"cannot load XGBoost model {stored.tag}: {error}") from error
    if not isinstance(booster, xgb.Booster):
        booster = booster.get_booster()
    return stored, booster


def booster_raw(tag: str) -> tuple[StoredModel, bytes]:
    """A stored native model as bytes (XGBoost's UBJSON), to rebuild where the store is absent."""
    stored, booster = load_booster(tag)
    return stored, bytes(booster.save_raw(raw_format="ubj"))


def booster_from_raw(raw: bytes, tag: str) -> xgb.Booster:
    """The inverse of `booster_raw`; `tag` names the model in the error."""
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as error:
        raise ModelLoadError(f"cannot load XGBoost model {tag} from bytes: {error}") from error
    return booster
