"""A stand-in model for batcher tests: row sums, so each caller can check its own rows."""

import time

import numpy as np


class CountingModel:
    """Row sum as the 'probability' so every caller can check it got its own rows back."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s

    def __call__(self, features: np.ndarray) -> np.ndarray:
        self.calls.append(len(features))
        if self.delay_s:
            time.sleep(self.delay_s)
        return features.sum(axis=1).astype(np.float32)
