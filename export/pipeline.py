"""The export pipeline: train, save native, convert, check parity, save ONNX."""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from export.dataset import DATA_PATH, data_sha256, load_applicants, split_applicants
from export.onnx_convert import (
    ONNX_INPUT_NAME,
    PARITY_TOLERANCE,
    check_parity,
    convert_booster,
)
from export.params import COURSE_PARAMS, ParamValue, TrainingParams
from export.store import DEFAULT_THRESHOLDS, save_native_model, save_onnx_model
from export.train import train_model
from features.distributions import METADATA_KEY, compute_distributions, to_metadata

MIN_TEST_AUC = 0.80


class ModelQualityError(RuntimeError):
    """The trained model scores below the AUC floor; nothing is saved."""


@dataclass(frozen=True)
class ExportSummary:
    native_tag: str
    onnx_tag: str
    test_auc: float
    parity_max_abs_diff: float
    n_features: int
    seconds: float
    training_params: dict[str, ParamValue]  # the --param overrides; {} for the course model

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_export(
    data_path: Path = DATA_PATH, seed: int = 1, params: TrainingParams = COURSE_PARAMS
) -> ExportSummary:
    """Train, convert and save both models; raises before saving anything ORT would score wrong
    or that scores below the AUC floor. `seed` is the split's; the booster's is in `params`."""
    started = time.perf_counter()
    split = split_applicants(load_applicants(data_path), seed=seed)
    trained = train_model(split, params.xgb_params, params.num_boost_round)
    if trained.test_auc < MIN_TEST_AUC:
        raise ModelQualityError(f"test AUC {trained.test_auc:.4f} is below {MIN_TEST_AUC}")

    feature_names = trained.feature_names
    onnx_model: onnx.ModelProto = convert_booster(trained.booster, len(feature_names))
    parity = check_parity(onnx_model, trained.booster, trained.test_features)

    common = {
        "feature_names": feature_names,
        "n_features": len(feature_names),
        "thresholds": DEFAULT_THRESHOLDS,
        "test_auc": trained.test_auc,
        "data_sha256": data_sha256(data_path),
        "seed": seed,
        # Both models carry the training parameters: /info and model comparisons read the ONNX one.
        "training_params": dict(params.chosen),
        "xgb_params": params.xgb_params,
        "num_boost_round": params.num_boost_round,
        # What the model was trained on, per form field: drift monitoring and reason directions.
        METADATA_KEY: to_metadata(compute_distributions(split.full_train)),
    }
    native = save_native_model(
        trained.booster,
        trained.vectorizer,
        common,
    )
    stored_onnx = save_onnx_model(
        onnx_model,
        {
            **common,
            "native_tag": str(native.tag),
            "onnx_input": ONNX_INPUT_NAME,
            "parity_max_abs_diff": parity,
            "parity_tolerance": PARITY_TOLERANCE,
            "parity_rows": len(trained.test_features),
        },
    )
    return ExportSummary(
        native_tag=str(native.tag),
        onnx_tag=str(stored_onnx.tag),
        test_auc=round(trained.test_auc, 6),
        parity_max_abs_diff=parity,
        n_features=len(feature_names),
        seconds=round(time.perf_counter() - started, 3),
        training_params=dict(params.chosen),
    )
