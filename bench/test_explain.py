"""Explanations in-process: per-field TreeSHAP contributions beside plain prediction, by batch
size, and the cost of reason codes and drift monitoring. One engine thread each.

    .venv/bin/pytest bench/test_explain.py --benchmark-only

Groups "explain, N rows" hold, for the same N: `table` and `xgboost` (Explainer methods),
`predict_xgboost_inplace` and `predict_onnx` (plain scoring, for the ratio).
"""

from collections.abc import Callable
from typing import Any

import bentoml
import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import record_rate, rows_of
from export.pipeline import ExportSummary
from features.distributions import METADATA_KEY, FieldDistribution, from_metadata, medians
from features.drift import DriftMonitor
from features.encoder import FeatureEncoder
from features.reasons import MatrixReasonCoder, ReasonCoder
from runners.explainer import Explainer
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

BATCH_SIZES = (1, 8, 64, 256, 1024, 4096)
CALLS = ("table", "xgboost", "predict_xgboost_inplace", "predict_onnx")
DRIFT_WINDOW = 10_000


@pytest.fixture(scope="module")
def table_explainer(exported: ExportSummary) -> Explainer:
    return Explainer.load(exported.onnx_tag, device="cpu", method="table")


@pytest.fixture(scope="module")
def engines(
    exported: ExportSummary, table_explainer: Explainer
) -> dict[str, Callable[[np.ndarray], Any]]:
    onnx = OnnxRunner.load(exported.onnx_tag, threads=1, device="cpu")
    native = XgboostRunner.load(exported.native_tag, threads=1, device="cpu")
    return {
        "table": table_explainer.contributions,
        "xgboost": Explainer.load(exported.onnx_tag, device="cpu", method="xgboost").contributions,
        "predict_xgboost_inplace": native.predict,
        "predict_onnx": onnx.predict,
    }


@pytest.fixture(scope="module")
def metadata(exported: ExportSummary) -> dict[str, Any]:
    return dict(bentoml.models.get(exported.onnx_tag).info.metadata)


@pytest.fixture(scope="module")
def distributions(metadata: dict[str, Any]) -> dict[str, FieldDistribution]:
    return from_metadata(metadata[METADATA_KEY])


@pytest.fixture(scope="module")
def encoded(records: list[dict[str, object]], metadata: dict[str, Any]) -> dict[int, np.ndarray]:
    encoder = FeatureEncoder(tuple(metadata["feature_names"]))
    sizes = (*BATCH_SIZES, DRIFT_WINDOW)
    return {n: encoder.encode_rows(rows_of(records, n)) for n in sizes}


@pytest.mark.parametrize("rows", BATCH_SIZES)
@pytest.mark.parametrize("call", CALLS)
def test_explain_vs_predict(
    benchmark: BenchmarkFixture,
    engines: dict[str, Callable[[np.ndarray], Any]],
    encoded: dict[int, np.ndarray],
    call: str,
    rows: int,
) -> None:
    features = encoded[rows]
    benchmark.group = f"explain, {rows} row{'s' if rows > 1 else ''}"
    benchmark.extra_info["call"] = call
    result = benchmark(engines[call], features)
    assert len(result) == rows
    record_rate(benchmark, rows)


@pytest.mark.parametrize("rows", BATCH_SIZES)
@pytest.mark.parametrize("way", ("by_row", "by_slot"))
def test_direction_patterns(
    benchmark: BenchmarkFixture,
    table_explainer: Explainer,
    encoded: dict[int, np.ndarray],
    way: str,
    rows: int,
) -> None:
    """The table's first step, both ways it has (ContributionTable.tree_patterns picks by_slot
    from BY_SLOT_ROWS rows on): the same bytes, timed side by side in one run."""
    table = table_explainer._table
    assert table is not None
    compute = table._patterns_by_slot if way == "by_slot" else table._patterns_by_row
    benchmark.group = f"direction patterns, {rows} row{'s' if rows > 1 else ''}"
    benchmark.extra_info["call"] = way
    result = benchmark(compute, encoded[rows])
    assert result.size == rows * table.n_trees
    record_rate(benchmark, rows)


def test_table_build(benchmark: BenchmarkFixture, exported: ExportSummary) -> None:
    """One-off cost per process: tabulating the 175 trees (XGBoost pred_contribs per tree)."""
    benchmark.group = "explainer start-up"
    explainer = benchmark.pedantic(
        Explainer.load, args=(exported.onnx_tag,), kwargs={"device": "cpu"}, rounds=3
    )
    assert explainer.method == "table"


@pytest.mark.parametrize("rows", (1, 64, 1024))
def test_drift_update(
    benchmark: BenchmarkFixture,
    distributions: dict[str, FieldDistribution],
    metadata: dict[str, Any],
    encoded: dict[int, np.ndarray],
    rows: int,
) -> None:
    """What each scoring call adds: copying its rows into the window's ring."""
    monitor = DriftMonitor(
        distributions, tuple(metadata["feature_names"]), window_rows=DRIFT_WINDOW
    )
    monitor.update(encoded[DRIFT_WINDOW])
    benchmark.group = "drift"
    benchmark.extra_info["call"] = f"update {rows}"
    benchmark(monitor.update, encoded[rows])
    record_rate(benchmark, rows)


def test_drift_psi(
    benchmark: BenchmarkFixture,
    distributions: dict[str, FieldDistribution],
    metadata: dict[str, Any],
    encoded: dict[int, np.ndarray],
) -> None:
    """What a metrics scrape pays: binning the full window and 13 PSIs."""
    monitor = DriftMonitor(
        distributions, tuple(metadata["feature_names"]), window_rows=DRIFT_WINDOW
    )
    monitor.update(encoded[DRIFT_WINDOW])
    benchmark.group = "drift"
    benchmark.extra_info["call"] = f"psi over {DRIFT_WINDOW} rows"
    assert len(benchmark(monitor.psi)) == 13


@pytest.fixture(scope="module")
def coders(
    distributions: dict[str, FieldDistribution], metadata: dict[str, Any]
) -> tuple[ReasonCoder, MatrixReasonCoder]:
    coder = ReasonCoder(medians(distributions))
    return coder, coder.matrix_coder(tuple(metadata["feature_names"]))


def test_reason_codes_bulk(
    benchmark: BenchmarkFixture,
    coders: tuple[ReasonCoder, MatrixReasonCoder],
    engines: dict[str, Callable[[np.ndarray], Any]],
    encoded: dict[int, np.ndarray],
) -> None:
    """Vectorised: 4 reason-code columns for 4,096 rows (the bulk route's reasons=4)."""
    features = encoded[4096]
    contributions = engines["table"](features).contributions
    benchmark.group = "reasons"
    benchmark.extra_info["call"] = "reason_codes k=4, 4096 rows"
    columns = benchmark(coders[1].reason_codes, contributions, features, 4)
    assert len(columns) == 4
    record_rate(benchmark, 4096)


def test_top_reasons_one_row(
    benchmark: BenchmarkFixture,
    coders: tuple[ReasonCoder, MatrixReasonCoder],
    engines: dict[str, Callable[[np.ndarray], Any]],
    encoded: dict[int, np.ndarray],
    records: list[dict[str, object]],
) -> None:
    """Row-wise: the /explain path, 4 reasons for one applicant."""
    contributions = engines["table"](encoded[1]).contributions[0]
    benchmark.group = "reasons"
    benchmark.extra_info["call"] = "top_reasons n=4, 1 row"
    benchmark(coders[0].top_reasons, contributions, records[0], 4)
