"""Model call: native XGBoost (inplace_predict, DMatrix predict) vs ONNX Runtime, by batch size."""

import numpy as np
import pytest
import xgboost as xgb

from bench.conftest import rows_of
from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

BATCH_SIZES = (1, 16, 256, 4096, 65536)


@pytest.fixture(scope="module")
def engines(exported: ExportSummary) -> dict[str, object]:
    onnx = OnnxRunner.load(exported.onnx_tag, threads=1, device="cpu")
    native = XgboostRunner.load(exported.native_tag, threads=1, device="cpu")
    return {"onnx": onnx, "xgboost": native}


@pytest.fixture(scope="module")
def encoded(records, exported: ExportSummary) -> dict[int, np.ndarray]:
    encoder = FeatureEncoder(OnnxRunner.load(exported.onnx_tag, device="cpu").stored.feature_names)
    return {n: encoder.encode_rows(rows_of(records, n)) for n in BATCH_SIZES}


@pytest.mark.parametrize("rows", BATCH_SIZES)
@pytest.mark.parametrize("engine", ["onnx", "xgboost_inplace", "xgboost_dmatrix"])
def test_model_call(benchmark, engines, encoded, engine: str, rows: int) -> None:
    features = encoded[rows]
    if engine == "onnx":
        call = lambda: engines["onnx"].predict(features)  # noqa: E731
    elif engine == "xgboost_inplace":
        call = lambda: engines["xgboost"].predict(features)  # noqa: E731
    else:
        booster = engines["xgboost"].booster
        call = lambda: booster.predict(xgb.DMatrix(features))  # noqa: E731
    benchmark.group = f"model call, {rows} rows"
    benchmark.extra_info.update(engine=engine, rows=rows)
    result = benchmark(call)
    assert len(result) == rows
    benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.mean
