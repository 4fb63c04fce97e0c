"""Booster -> ONNX conversion and the parity guard that refuses a model ORT scores differently."""

import numpy as np
import onnx
import onnxruntime as ort
import xgboost as xgb
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

ONNX_INPUT_NAME = "features"
PARITY_TOLERANCE = 1e-5
TARGET_OPSET = 15


class ParityError(RuntimeError):
    """ONNX Runtime's probabilities differ from XGBoost's by more than the tolerance."""


def convert_booster(booster: xgb.Booster, n_features: int) -> onnx.ModelProto:
    initial_types = [(ONNX_INPUT_NAME, FloatTensorType([None, n_features]))]
    return convert_xgboost(booster, initial_types=initial_types, target_opset=TARGET_OPSET)


def onnx_default_probability(model: onnx.ModelProto, features: np.ndarray) -> np.ndarray:
    """P(default) for each row, computed by a fresh single-threaded ORT session."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    probabilities_output = session.get_outputs()[1].name
    (probabilities,) = session.run([probabilities_output], {ONNX_INPUT_NAME: features})
    return np.asarray(probabilities)[:, 1]


def parity_max_abs_diff(
    model: onnx.ModelProto, booster: xgb.Booster, features: np.ndarray
) -> float:
    expected = booster.inplace_predict(features)
    actual = onnx_default_probability(model, features)
    return float(np.max(np.abs(expected - actual)))


def check_parity(
    model: onnx.ModelProto,
    booster: xgb.Booster,
    features: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """The max abs difference; raises ParityError above the tolerance."""
    diff = parity_max_abs_diff(model, booster, features)
    if not diff <= tolerance:  # also catches NaN
        raise ParityError(
            f"ONNX parity check failed: max |p_onnx - p_xgboost| = {diff:.3g} over "
            f"{len(features)} test rows exceeds the tolerance {tolerance:g}; ONNX model not saved"
        )
    return diff
