"""XGBoost training with the course's DictVectorizer and hyper-parameters."""

from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from sklearn.feature_extraction import DictVectorizer
from sklearn.metrics import roc_auc_score

from export.dataset import DatasetSplit, applicant_records, default_labels

XGB_PARAMS: dict[str, object] = {
    "eta": 0.1,
    "max_depth": 3,
    "min_child_weight": 1,
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "nthread": 2,
    "seed": 1,
    "verbosity": 1,
}
NUM_BOOST_ROUND = 175


@dataclass(frozen=True)
class TrainedModel:
    booster: xgb.Booster
    vectorizer: DictVectorizer
    test_features: np.ndarray  # float32, in the vectorizer's feature order
    test_labels: np.ndarray
    test_auc: float

    @property
    def feature_names(self) -> list[str]:
        return [str(name) for name in self.vectorizer.get_feature_names_out()]


def train_model(
    split: DatasetSplit,
    xgb_params: dict[str, object] | None = None,
    num_boost_round: int = NUM_BOOST_ROUND,
) -> TrainedModel:
    """Train on train + validation, evaluate on the held-out test set (course parameters unless
    `xgb_params` is given)."""
    full_train = split.full_train
    vectorizer = DictVectorizer(sparse=False)
    x_train = vectorizer.fit_transform(applicant_records(full_train)).astype(np.float32)
    # No feature names in the DMatrix: onnxmltools expects the default f0..fN names.
    dtrain = xgb.DMatrix(x_train, label=default_labels(full_train))
    params = XGB_PARAMS if xgb_params is None else xgb_params
    booster = xgb.train(params, dtrain, num_boost_round=num_boost_round)

    x_test = vectorizer.transform(applicant_records(split.test)).astype(np.float32)
    y_test = default_labels(split.test)
    predictions = booster.inplace_predict(x_test)
    auc = float(roc_auc_score(y_test, predictions))
    return TrainedModel(booster, vectorizer, x_test, y_test, auc)
