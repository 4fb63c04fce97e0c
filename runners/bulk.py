"""Bulk scoring: one large matrix, split into model-sized chunks, each routed to the engine
that is fastest at that size (ONNX Runtime wins at few rows, native XGBoost at many)."""

from dataclasses import dataclass

import numpy as np

from runners.base import FeatureMatrix, Probabilities, Runner


@dataclass(frozen=True)
class ChunkedPredictor:
    small: Runner  # used below `large_min_rows`
    large: Runner  # used from `large_min_rows` up
    large_min_rows: int
    chunk_rows: int

    def engine_for(self, rows: int) -> Runner:
        return self.large if rows >= self.large_min_rows else self.small

    def predict(self, features: FeatureMatrix) -> Probabilities:
        n = len(features)
        if n <= self.chunk_rows:
            return self.engine_for(n).predict(features)
        out = np.empty(n, dtype=np.float32)
        for start in range(0, n, self.chunk_rows):
            chunk = features[start : start + self.chunk_rows]
            out[start : start + len(chunk)] = self.engine_for(len(chunk)).predict(chunk)
        return out
