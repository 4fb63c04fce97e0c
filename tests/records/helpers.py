"""Decision batches for the record tests: real-shaped applicants, deterministic values."""

import time
from typing import Any, cast

import numpy as np

from features.schema import CATEGORICAL_FIELDS, FIELDS, categories
from service.records.schema import DecisionBatch

STATUSES = ("APPROVED", "MAYBE", "DECLINED")


def make_batch(
    request_id: str,
    n: int = 1,
    *,
    route: str = "/classify",
    decided_at: float | None = None,
    seed: int = 0,
) -> DecisionBatch:
    rng = np.random.default_rng(seed)
    fields: dict[str, list[object]] = {}
    for field in FIELDS:
        if field in CATEGORICAL_FIELDS:
            options = categories(field)
            fields[field] = [options[i] for i in rng.integers(0, len(options), n)]
        else:
            fields[field] = rng.integers(18, 5000, n).astype(float).tolist()
    probability = rng.random(n).astype(np.float32)
    status = [STATUSES[(p > 0.3) + (p > 0.5)] for p in probability.tolist()]
    return DecisionBatch(
        request_id=request_id,
        route=route,
        client="-",
        model="credit_risk_onnx:test",
        decided_at=time.time() if decided_at is None else decided_at,
        probability=probability,
        status=status,
        fields=fields,
        features=np.zeros((n, 29), dtype=np.float32),
    )


class ManualClock:
    """A clock the test turns by hand (epoch seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def column(batch: DecisionBatch, field: str) -> list[Any]:
    """A field's values in a batch `make_batch` built (column-wise lists)."""
    return cast(dict[str, list[Any]], batch.fields)[field]
