"""Decision monitoring on /metrics: decisions by status and model, a probability histogram, and
per-field input drift (the Population Stability Index over a window of recent rows).

Everything scored (single, batch, bulk, explain, V2) is observed once, after its model call.
A single applicant costs a few list operations here: counts go through the worker's
`MetricsBuffer`, and rows for the drift window are queued and handed to the `DriftMonitor` in
one block at the next metrics flush (once a second), where the PSI gauges are also set.
Each worker keeps its own window (its share of the traffic); the gauge reports the highest PSI
among live workers (`livemax`), the one to alert on.
"""

import numpy as np

from features.drift import DriftMonitor
from features.thresholds import STATUSES, Thresholds
from runners.base import FeatureMatrix, Probabilities
from service.metrics import BufferedCounter, BufferedHistogram, MetricsBuffer

PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95 (+Inf)


class DecisionMonitor:
    def __init__(
        self,
        buffer: MetricsBuffer,
        model_tag: str,
        thresholds: Thresholds,
        drift: DriftMonitor | None,
    ) -> None:
        import prometheus_client as prom

        decisions = prom.Counter(
            "credit_risk_decisions", "Decisions given, by status and model", ["status", "model"],
            registry=None,
        )  # fmt: skip
        probability = prom.Histogram(
            "credit_risk_probability", "Probability of default of scored applicants", ["model"],
            buckets=PROBABILITY_BUCKETS, registry=None,
        )  # fmt: skip
        self._psi = prom.Gauge(
            "credit_risk_input_psi",
            "Population Stability Index of each form field over the recent window, against the "
            "model's training data (> 0.25: a population the model was not trained on)",
            ["field", "model"],
            multiprocess_mode="livemax",
            registry=None,
        )
        self.model_tag = model_tag
        self.thresholds = thresholds
        self.drift = drift
        self._buffer = buffer
        self._by_level: list[BufferedCounter] = [
            buffer.counter(decisions, status, model_tag) for status in STATUSES.tolist()
        ]
        self._probability: BufferedHistogram = buffer.histogram(probability, model_tag)
        self._rows: list[FeatureMatrix] = []
        buffer.before_flush(self._flush_drift)

    def observe(self, features: FeatureMatrix, probabilities: Probabilities) -> None:
        """Rows just scored (the model's float32 features) and their probabilities."""
        if len(probabilities) == 1:
            p = float(probabilities[0])
            level = 2 if p > self.thresholds.declined else 1 if p > self.thresholds.maybe else 0
            self._by_level[level].count += 1
            self._probability.observe(p)
        else:
            counts = np.bincount(self.thresholds.levels(probabilities), minlength=3)
            for counter, count in zip(self._by_level, counts.tolist(), strict=True):
                counter.count += count
            self._probability.observe_many(probabilities)
        if self.drift is not None:
            self._rows.append(features)  # until the next flush (at most about a second's rows)
        self._buffer.touch()

    def _flush_drift(self) -> None:
        if self.drift is None or not self._rows:
            return
        # The most recent rows, at most a window's worth (older ones would only be pushed out).
        recent: list[FeatureMatrix] = []
        count = 0
        while self._rows and count < self.drift.window_rows:
            block = self._rows.pop()
            recent.append(block)
            count += len(block)
        self._rows.clear()
        recent.reverse()
        self.drift.update(recent[0] if len(recent) == 1 else np.concatenate(recent))
        for field, value in self.drift.psi().items():
            self._psi.labels(field, self.model_tag).set(value)
