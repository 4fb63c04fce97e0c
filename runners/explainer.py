"""Per-field TreeSHAP contributions of the native XGBoost twin of a served ONNX model.

An explanation of a row is its probability of default, the model's base log-odds (`bias`) and
one log-odds contribution per form field (features.schema.FIELDS order; a category's one-hot
columns summed into its field), with bias + sum(contributions) == logit(probability). The
numbers are exact path-dependent TreeSHAP values, computed one of two ways:
- "xgboost": `booster.predict(DMatrix, pred_contribs=True)`, one call per batch. XGBoost has no
  in-place (DMatrix-free) path for contributions: `inplace_predict` refuses the prediction type.
- "table": the same values, tabulated once per tree and direction pattern from XGBoost's own
  `pred_contribs` (runners/contribution_table.py), then looked up per batch; many times faster
  (bench/test_explain.py) for boosters of trees of depth <= 3 like the course model.
"auto" picks the table on CPU when the booster allows it, else XGBoost (on CUDA, XGBoost's GPU
TreeSHAP).
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from features.schema import FIELDS
from runners.base import FeatureMatrix
from runners.contribution_table import ContributionTable, unsupported_reason
from runners.device import DeviceRequest, resolve_device
from runners.factory import native_tag_of
from runners.model_store import load_booster
from runners.xgboost_runner import xgboost_supports_cuda

Method = Literal["auto", "table", "xgboost"]
FieldMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Explanation:
    probability: npt.NDArray[np.float32]  # (n,) P(default)
    bias: float  # base log-odds, the same for every row
    contributions: FieldMatrix  # (n, len(FIELDS)) log-odds per form field, FIELDS order

    def __len__(self) -> int:
        return len(self.probability)


def field_grouping(feature_names: tuple[str, ...]) -> FieldMatrix:
    """(n_features, len(FIELDS)) 0/1: column j of the model feeds field i when the feature's
    name is FIELDS[i] (numbers) or starts with "FIELDS[i]=" (one-hot categories)."""
    grouping = np.zeros((len(feature_names), len(FIELDS)), dtype=np.float32)
    position = {field: i for i, field in enumerate(FIELDS)}
    for column, name in enumerate(feature_names):
        field = name.split("=", 1)[0]
        if field not in position:
            raise ValueError(f"feature {name!r} belongs to no form field")
        grouping[column, position[field]] = 1.0
    return grouping


class Explainer:
    """Explains float32 feature matrices in the model's feature order (the ONNX runner's input)."""

    def __init__(
        self,
        booster: xgb.Booster,
        feature_names: tuple[str, ...],
        *,
        threads: int = 1,
        device: Literal["cpu", "cuda"] = "cpu",
        method: Method = "auto",
        tag: str | None = None,
    ) -> None:
        if booster.num_features() != len(feature_names):
            raise ValueError(
                f"booster takes {booster.num_features()} features but {len(feature_names)} "
                "feature names were given"
            )
        booster.set_param({"nthread": threads, "device": device})
        self.booster = booster
        self.feature_names = feature_names
        self.threads = threads
        self.device = device
        self.tag = tag
        self.grouping = field_grouping(feature_names)
        self.method: Literal["table", "xgboost"] = self._choose(method)
        self._table = (
            ContributionTable.build(booster, self.grouping) if self.method == "table" else None
        )

    def _choose(self, method: Method) -> Literal["table", "xgboost"]:
        why_not = unsupported_reason(self.booster)
        if method == "table":
            if why_not is not None:
                raise ValueError(f"method='table' unavailable: {why_not}")
            if self.device != "cpu":
                raise ValueError("method='table' runs on the CPU only")
            return "table"
        if method == "xgboost" or self.device != "cpu" or why_not is not None:
            return "xgboost"
        return "table"

    @classmethod
    def load(
        cls,
        onnx_tag: str,
        *,
        threads: int = 1,
        device: DeviceRequest = "auto",
        method: Method = "auto",
    ) -> "Explainer":
        """The explainer of the native twin of a served ONNX model tag."""
        stored, booster = load_booster(native_tag_of(onnx_tag))
        choice = resolve_device(device, "xgboost", xgboost_supports_cuda(), stored.tag)
        return cls(
            booster,
            stored.feature_names,
            threads=threads,
            device=choice.device,
            method=method,
            tag=stored.tag,
        )

    @classmethod
    def from_bytes(
        cls,
        raw: bytes | bytearray,
        feature_names: tuple[str, ...],
        *,
        threads: int = 1,
        device: Literal["cpu", "cuda"] = "cpu",
        method: Method = "auto",
        tag: str | None = None,
    ) -> "Explainer":
        """From `booster.save_raw()` bytes (JSON or UBJSON), e.g. broadcast to Spark executors."""
        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        return cls(
            booster, tuple(feature_names), threads=threads, device=device, method=method, tag=tag
        )

    def contributions(self, features: FeatureMatrix) -> Explanation:
        """Explains each row of a C-contiguous float32 (n, n_features) matrix, one pass."""
        # XGBoost decides splits on float32 values; so does the table.
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a (rows, {len(self.feature_names)}) matrix, got {features.shape}"
            )
        if self._table is not None:
            fields = self._table.lookup(features)
            bias = self._table.bias
        elif len(features) == 0:
            fields = np.zeros((0, len(FIELDS)), dtype=np.float32)
            bias = self._bias()
        else:
            raw = self.booster.predict(
                xgb.DMatrix(features, nthread=self.threads), pred_contribs=True
            )
            fields = raw[:, :-1] @ self.grouping
            bias = float(raw[0, -1])  # the same in every row: the expected margin
        margin = bias + fields.sum(axis=1, dtype=np.float64)
        probability = (1.0 / (1.0 + np.exp(-margin))).astype(np.float32)
        return Explanation(probability=probability, bias=bias, contributions=fields)

    def _bias(self) -> float:
        probe = np.zeros((1, len(self.feature_names)), dtype=np.float32)
        return float(self.booster.predict(xgb.DMatrix(probe), pred_contribs=True)[0, -1])
