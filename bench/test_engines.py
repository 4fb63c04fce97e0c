"""Model call: native XGBoost (inplace_predict, DMatrix predict) vs ONNX Runtime, by batch size.

One engine thread each (what every API worker uses). Rows/s go into the JSON's extra_info.
"""

from collections.abc import Callable

import numpy as np
import pytest
import xgboost as xgb
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import record_rate, rows_of
from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

BATCH_SIZES = (1, 16, 256, 4096, 65536)
ENGINES = ("onnx", "xgboost_inplace", "xgboost_dmatrix")


@pytest.fixture(scope="module")
def runners(exported: ExportSummary) -> tuple[OnnxRunner, XgboostRunner]:
    onnx = OnnxRunner.load(exported.onnx_tag, threads=1, device="cpu")
    native = XgboostRunner.load(exported.native_tag, threads=1, device="cpu")
    return onnx, native


@pytest.fixture(scope="module")
def encoded(
    records: list[dict[str, object]], runners: tuple[OnnxRunner, XgboostRunner]
) -> dict[int, np.ndarray]:
    encoder = FeatureEncoder(runners[0].stored.feature_names)
    return {n: encoder.encode_rows(rows_of(records, n)) for n in BATCH_SIZES}


def engine_call(
    engine: str, runners: tuple[OnnxRunner, XgboostRunner]
) -> Callable[[np.ndarray], np.ndarray]:
    onnx, native = runners
    if engine == "onnx":
        return onnx.predict
    if engine == "xgboost_inplace":
        return native.predict
    # The course's way: a DMatrix per call (built with one thread too), then predict.
    return lambda features: native.booster.predict(xgb.DMatrix(features, nthread=1))


@pytest.mark.parametrize("rows", BATCH_SIZES)
@pytest.mark.parametrize("engine", ENGINES)
def test_model_call(
    benchmark: BenchmarkFixture,
    runners: tuple[OnnxRunner, XgboostRunner],
    encoded: dict[int, np.ndarray],
    engine: str,
    rows: int,
) -> None:
    features = encoded[rows]
    call = engine_call(engine, runners)
    benchmark.group = f"model call, {rows} row{'s' if rows > 1 else ''}"
    benchmark.extra_info["engine"] = engine
    result = benchmark(call, features)
    assert len(result) == rows
    record_rate(benchmark, rows)
