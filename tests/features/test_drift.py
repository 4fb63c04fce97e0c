"""Population Stability Index per field over a sliding window of scored rows."""

import math
from typing import Any

import bentoml
import numpy as np
import pytest

from export.dataset import applicant_records, load_applicants, split_applicants
from export.pipeline import ExportSummary
from features.distributions import METADATA_KEY, FieldDistribution, from_metadata
from features.drift import DriftMonitor, psi
from features.encoder import FeatureEncoder
from features.schema import FIELDS, NUMERIC_FIELDS

WINDOW = 2_000


@pytest.fixture(scope="module")
def model(exported: ExportSummary) -> tuple[dict[str, FieldDistribution], tuple[str, ...]]:
    metadata = bentoml.models.get(exported.onnx_tag).info.metadata
    return from_metadata(metadata[METADATA_KEY]), tuple(metadata["feature_names"])


@pytest.fixture(scope="module")
def training_rows() -> list[dict[str, Any]]:
    return applicant_records(split_applicants(load_applicants(), seed=1).full_train)


def sample(rows: list[dict[str, Any]], n: int, seed: int, **override: Any) -> list[dict[str, Any]]:
    """n rows drawn with replacement; a callable override maps the field's value."""
    rng = np.random.default_rng(seed)
    drawn = [dict(rows[i]) for i in rng.integers(len(rows), size=n)]
    for field, change in override.items():
        for row in drawn:
            row[field] = change(row[field]) if callable(change) else change
    return drawn


def monitor_fed(
    model: tuple[dict[str, FieldDistribution], tuple[str, ...]], *batches: list[dict[str, Any]]
) -> DriftMonitor:
    distributions, names = model
    monitor = DriftMonitor(distributions, names, window_rows=WINDOW)
    encoder = FeatureEncoder(names)
    for batch in batches:
        monitor.update(encoder.encode_rows(batch))
    return monitor


def test_psi_by_hand() -> None:
    """Two bins, expected 50/50, observed 80/20: (0.8-0.5) ln(0.8/0.5) + (0.2-0.5) ln(0.2/0.5)
    = 0.3 * 0.4700 + 0.3 * 0.9163 = 0.4159. An empty observed bin is floored at epsilon."""
    half = np.array([0.5, 0.5])
    assert psi(half, np.array([80, 20]), 1e-4) == pytest.approx(0.41589, abs=1e-5)
    assert psi(half, np.array([7, 7]), 1e-4) == 0.0
    floored = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi(half, np.array([0, 10]), 1e-4) == pytest.approx(floored)
    assert math.isnan(psi(half, np.array([0, 0]), 1e-4))


def test_rows_from_the_training_distribution_are_stable(
    model: tuple[dict[str, FieldDistribution], tuple[str, ...]],
    training_rows: list[dict[str, Any]],
) -> None:
    monitor = monitor_fed(model, sample(training_rows, WINDOW, seed=1))
    values = monitor.psi()
    assert list(values) == list(FIELDS)
    assert all(v < 0.1 for v in values.values()), values


@pytest.mark.parametrize(
    ("field", "change"),
    [("income", lambda income: income * 3), ("home", "rent"), ("records", "unk")],
)
def test_a_shifted_field_rises_above_025_and_the_others_stay_low(
    model: tuple[dict[str, FieldDistribution], tuple[str, ...]],
    training_rows: list[dict[str, Any]],
    field: str,
    change: Any,
) -> None:
    """records=unk is a category no training row had (no model column): its own bin."""
    monitor = monitor_fed(model, sample(training_rows, WINDOW, seed=2, **{field: change}))
    values = monitor.psi()
    assert values[field] > 0.25, values
    assert all(v < 0.1 for f, v in values.items() if f != field), values


def test_the_window_slides(
    model: tuple[dict[str, FieldDistribution], tuple[str, ...]],
    training_rows: list[dict[str, Any]],
) -> None:
    shifted = sample(training_rows, WINDOW, seed=3, income=lambda income: income * 3)
    normal = sample(training_rows, WINDOW, seed=4)
    monitor = monitor_fed(model, normal[:500])
    assert monitor.rows == 500
    # batches of uneven sizes that wrap around the ring
    encoder = FeatureEncoder(model[1])
    for start in range(0, WINDOW, 333):
        monitor.update(encoder.encode_rows(shifted[start : start + 333]))
    assert monitor.rows == WINDOW
    assert monitor.psi()["income"] > 0.25
    half_back = sample(training_rows, WINDOW // 2, seed=5)
    monitor.update(encoder.encode_rows(half_back))
    counts = monitor.bin_counts()
    assert all(c.sum() == WINDOW for c in counts.values())
    # the window is now exactly the last 1,000 shifted rows and the 1,000 normal ones
    expected = monitor_fed(model, shifted[-WINDOW // 2 :], half_back).bin_counts()
    for field in FIELDS:
        np.testing.assert_array_equal(counts[field], expected[field], err_msg=field)
    monitor.update(encoder.encode_rows(normal))  # a batch as large as the window replaces it
    assert monitor.psi()["income"] < 0.1


def test_numeric_bins_match_a_loop_over_the_edges(
    model: tuple[dict[str, FieldDistribution], tuple[str, ...]],
    training_rows: list[dict[str, Any]],
) -> None:
    rows = sample(training_rows, 300, seed=6)
    counts = monitor_fed(model, rows).bin_counts()
    distributions = model[0]
    for field in NUMERIC_FIELDS:
        edges = list(distributions[field].edges)  # type: ignore[union-attr]
        by_loop = [0] * (len(edges) + 1)
        for row in rows:
            value = np.float32(row[field])
            by_loop[sum(1 for edge in edges if value > edge)] += 1
        assert counts[field].tolist() == by_loop, field


def test_empty_window_and_bad_arguments(
    model: tuple[dict[str, FieldDistribution], tuple[str, ...]],
) -> None:
    monitor = DriftMonitor(model[0], model[1], window_rows=10)
    monitor.update(np.zeros((0, len(model[1])), dtype=np.float32))
    assert monitor.rows == 0
    assert all(math.isnan(v) for v in monitor.psi().values())
    with pytest.raises(ValueError, match="window_rows"):
        DriftMonitor(model[0], model[1], window_rows=0)
