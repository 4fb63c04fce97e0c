"""The model shipped as bytes scores exactly like the runners loaded from the store by tag."""

import pickle

import numpy as np

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from jobs.engine import XGBOOST_MIN_ROWS, ModelBundle
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner


def test_runners_from_bytes_equal_runners_by_tag(exported: ExportSummary, records) -> None:
    bundle = pickle.loads(pickle.dumps(ModelBundle.read(exported.onnx_tag)))  # as broadcast
    assert (bundle.tag, bundle.native.tag) == (exported.onnx_tag, exported.native_tag)
    features = FeatureEncoder(bundle.onnx.feature_names).encode_rows(records[:1000])
    predictor = bundle.predictor()
    by_tag_onnx = OnnxRunner.load(exported.onnx_tag, threads=1)
    by_tag_native = XgboostRunner.load(exported.native_tag, threads=1)
    np.testing.assert_array_equal(predictor.small.predict(features), by_tag_onnx.predict(features))
    np.testing.assert_array_equal(
        predictor.large.predict(features), by_tag_native.predict(features)
    )
    assert predictor.engine_for(XGBOOST_MIN_ROWS - 1).engine == "onnx"
    assert predictor.engine_for(XGBOOST_MIN_ROWS).engine == "xgboost"
    assert bundle.thresholds == (0.3, 0.5)
