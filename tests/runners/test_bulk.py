"""Bulk scoring split into pieces on several threads: the same probabilities as one engine call,
every row scored once, each piece on the engine its size calls for."""

import threading
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pytest

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.base import FeatureMatrix, Probabilities
from runners.bulk import MIN_PIECE_ROWS, ChunkedPredictor
from runners.model_store import StoredModel
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner


@dataclass
class Recording:
    """Wraps a real engine and records the size and thread of each call."""

    inner: XgboostRunner | OnnxRunner
    calls: list[tuple[int, str]] = field(default_factory=list)

    @property
    def engine(self) -> str:
        return self.inner.engine

    @property
    def device(self) -> str:
        return self.inner.device

    @property
    def stored(self) -> StoredModel:
        return self.inner.stored

    @property
    def tag(self) -> str:
        return self.inner.tag

    @property
    def n_features(self) -> int:
        return self.inner.n_features

    def predict(self, features: FeatureMatrix) -> Probabilities:
        self.calls.append((len(features), threading.current_thread().name))
        return self.inner.predict(features)


@pytest.fixture(scope="module")
def engines(exported: ExportSummary) -> tuple[OnnxRunner, XgboostRunner]:
    return (
        OnnxRunner.load(exported.onnx_tag, device="cpu"),
        XgboostRunner.load(exported.native_tag, device="cpu"),
    )


@pytest.fixture(scope="module")
def rows(engines: tuple[OnnxRunner, XgboostRunner], records: list[dict[str, object]]) -> np.ndarray:
    """50,000 dataset rows (repeated), encoded."""
    encoder = FeatureEncoder(engines[1].stored.feature_names)
    return encoder.encode_rows([records[i % len(records)] for i in range(50_000)])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pieces_cover_every_row_once(threads: int) -> None:
    for count in (0, 1, 255, MIN_PIECE_ROWS * 2 - 1, 50_000, 65_536, 200_001):
        predictor_pieces = _pieces(threads, count, chunk_rows=65_536)
        covered = [i for start, stop in predictor_pieces for i in (start, stop)]
        assert covered[0] == 0 and covered[-1] == count
        assert all(a[1] == b[0] for a, b in pairwise(predictor_pieces))
        assert all(stop - start <= 65_536 for start, stop in predictor_pieces)
        # Split across the threads only where each piece keeps its minimum.
        expected_at_least = min(threads, count // MIN_PIECE_ROWS)
        assert len(predictor_pieces) >= max(1, expected_at_least)


def _pieces(threads: int, count: int, chunk_rows: int) -> list[tuple[int, int]]:
    class NoEngine:  # pieces() never calls an engine
        pass

    predictor = ChunkedPredictor(NoEngine(), NoEngine(), 256, chunk_rows, threads=threads)  # type: ignore[arg-type]
    try:
        return predictor.pieces(count)
    finally:
        predictor.close()


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_split_scores_equal_one_engine_call(
    engines: tuple[OnnxRunner, XgboostRunner], rows: np.ndarray, threads: int
) -> None:
    onnx, native = Recording(engines[0]), Recording(engines[1])
    predictor = ChunkedPredictor(onnx, native, 256, 65_536, threads=threads)  # type: ignore[arg-type]
    try:
        split = predictor.predict(rows)
    finally:
        predictor.close()
    np.testing.assert_array_equal(split, engines[1].predict(rows))
    assert sum(size for size, _ in native.calls) == len(rows) and not onnx.calls
    if threads > 1:  # 50,000 rows: at least a piece per thread, all on the pool's threads
        assert len(native.calls) >= threads
        assert all(name.startswith("bulk-piece") for _, name in native.calls)
    else:
        assert len(native.calls) == 1


def test_small_input_goes_to_the_small_engine_in_one_call(
    engines: tuple[OnnxRunner, XgboostRunner], rows: np.ndarray
) -> None:
    onnx, native = Recording(engines[0]), Recording(engines[1])
    predictor = ChunkedPredictor(onnx, native, 256, 65_536, threads=2)  # type: ignore[arg-type]
    try:
        small = predictor.predict(rows[:100])
    finally:
        predictor.close()
    np.testing.assert_allclose(small, engines[1].predict(rows[:100]), atol=1e-5)
    assert onnx.calls == [(100, threading.current_thread().name)] and not native.calls


def test_an_engine_error_reaches_the_caller(
    engines: tuple[OnnxRunner, XgboostRunner], rows: np.ndarray
) -> None:
    predictor = ChunkedPredictor(engines[0], engines[1], 256, 65_536, threads=2)
    try:
        with pytest.raises(ValueError):
            predictor.predict(rows[:, :5])  # too few features: XGBoost refuses
    finally:
        predictor.close()


def test_a_closed_predictor_still_scores_on_the_callers_thread(
    engines: tuple[OnnxRunner, XgboostRunner], rows: np.ndarray
) -> None:
    """A replaced model's predictor is closed while requests may still be finishing on it."""
    native = Recording(engines[1])
    predictor = ChunkedPredictor(engines[0], native, 256, 65_536, threads=2)  # type: ignore[arg-type]
    predictor.close()
    np.testing.assert_array_equal(predictor.predict(rows), engines[1].predict(rows))
    assert {name for _, name in native.calls} == {threading.current_thread().name}
