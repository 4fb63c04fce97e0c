"""The one abstraction every engine implements: load by tag, predict P(default) for a matrix."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from runners.model_store import StoredModel

FeatureMatrix = npt.NDArray[np.float32]
Probabilities = npt.NDArray[np.float32]
# Two models in one call (runners/pair.py): (rows, positions) -> (the first model's
# probabilities for every row, the second model's for rows[positions]).
JoinedCall = Callable[[FeatureMatrix, npt.NDArray[np.int64]], tuple[Probabilities, Probabilities]]


@dataclass
class StoredModelRunner:
    """What every engine shares: the stored model it runs and the device it runs on."""

    stored: StoredModel
    device: str

    @property
    def tag(self) -> str:
        return self.stored.tag

    @property
    def n_features(self) -> int:
        return len(self.stored.feature_names)


class Runner(Protocol):
    engine: str  # "onnx" or "xgboost"
    device: str  # "cpu" or "cuda"
    stored: StoredModel

    @property
    def tag(self) -> str: ...

    @property
    def n_features(self) -> int: ...

    def predict(self, features: FeatureMatrix) -> Probabilities:
        """P(default) for each row of a C-contiguous float32 matrix."""
        ...
