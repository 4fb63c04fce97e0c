"""The model shipped as bytes scores exactly like the runners loaded from the store by tag."""

import pickle

import numpy as np
import pytest

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from features.thresholds import Thresholds
from jobs.engine import ModelBundle
from runners.model_store import ModelLoadError
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner
from service.settings import ServiceSettings


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


def test_a_bad_setting_in_the_environment_is_one_clear_error(
    exported: ExportSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDIT_RISK_MAYBE_THRESHOLD", "lots")
    with pytest.raises(ModelLoadError, match="CREDIT_RISK_MAYBE_THRESHOLD: Input should be"):
        ModelBundle.read(exported.onnx_tag)
    monkeypatch.setenv("CREDIT_RISK_MAYBE_THRESHOLD", "0.25")
    assert ModelBundle.read(exported.onnx_tag).thresholds == Thresholds(0.25, 0.5)


def test_the_job_reads_the_servers_scoring_settings(exported: ExportSummary) -> None:
    """Thresholds and engine routing come from the same CREDIT_RISK_* settings as the
    server's, read on the driver and carried to the executors in the bundle."""
    settings = ServiceSettings(
        maybe_threshold=0.2, declined_threshold=0.7, bulk_xgboost_min_rows=10, bulk_chunk_rows=500
    )
    bundle = pickle.loads(pickle.dumps(ModelBundle.read(exported.onnx_tag, settings)))
    assert bundle.thresholds == Thresholds(0.2, 0.7)
    predictor = bundle.predictor()
    assert predictor.engine_for(9).engine == "onnx"
    assert predictor.engine_for(10).engine == "xgboost"
    assert predictor.chunk_rows == 500
