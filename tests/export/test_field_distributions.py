"""Training distributions stored in the model metadata by the export."""

import itertools

import bentoml
import numpy as np
import pytest

from export.dataset import load_applicants, split_applicants
from export.pipeline import ExportSummary
from features.distributions import (
    METADATA_KEY,
    CategoricalDistribution,
    NumericDistribution,
    from_metadata,
    numeric_distribution,
)
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS, categories

EARLIER_KEYS = {"feature_names", "n_features", "thresholds", "test_auc", "data_sha256", "seed"}


@pytest.fixture(scope="module")
def stored(exported: ExportSummary) -> dict[str, object]:
    return dict(bentoml.models.get(exported.onnx_tag).info.metadata)


def test_both_models_store_the_same_distributions_beside_the_earlier_keys(
    exported: ExportSummary, stored: dict[str, object]
) -> None:
    native = bentoml.models.get(exported.native_tag).info.metadata
    assert stored[METADATA_KEY] == native[METADATA_KEY]
    assert EARLIER_KEYS | {"native_tag", "parity_max_abs_diff"} <= set(stored)
    assert EARLIER_KEYS | {"xgb_params", "num_boost_round"} <= set(native)
    assert list(stored[METADATA_KEY]) == list(FIELDS)  # type: ignore[call-overload]


def test_shares_sum_to_one_and_categories_are_complete(stored: dict[str, object]) -> None:
    distributions = from_metadata(stored[METADATA_KEY])  # type: ignore[arg-type]
    for field in FIELDS:
        assert distributions[field].shares.sum() == pytest.approx(1.0, abs=1e-9), field
        assert (distributions[field].shares >= 0).all()
    for field in CATEGORICAL_FIELDS:
        distribution = distributions[field]
        assert isinstance(distribution, CategoricalDistribution)
        assert distribution.categories == categories(field)
    records = distributions["records"]
    assert isinstance(records, CategoricalDistribution)
    assert records.shares[records.categories.index("unk")] == 0  # no training row has it


def test_values_match_an_independent_count_of_the_training_rows(stored: dict[str, object]) -> None:
    """Medians, category shares and bin shares, recounted here from the rows the model was
    trained on (train + validation of the seeded split)."""
    training = split_applicants(load_applicants(), seed=1).full_train
    distributions = from_metadata(stored[METADATA_KEY])  # type: ignore[arg-type]
    for field in NUMERIC_FIELDS:
        distribution = distributions[field]
        assert isinstance(distribution, NumericDistribution)
        values = training[field].to_numpy(dtype=float)
        assert distribution.median == float(training[field].median()), field
        edges = list(distribution.edges)
        assert edges == sorted(set(edges))
        bounds = [-np.inf, *edges, np.inf]
        recounted = [
            float(np.mean((values > low) & (values <= high)))
            for low, high in itertools.pairwise(bounds)
        ]
        np.testing.assert_allclose(distribution.shares, recounted, atol=1e-12, err_msg=field)
    home = distributions["home"]
    assert isinstance(home, CategoricalDistribution)
    for value, share in zip(home.categories, home.shares, strict=True):
        assert share == pytest.approx(float(np.mean(training["home"] == value)), abs=1e-12)


def test_a_point_mass_gets_one_bin_not_two() -> None:
    """Debt is 0 for most applicants: the deciles repeat 0, the edges keep it once, and every
    zero lands in the bin (-inf, 0]."""
    values = np.array([0.0] * 80 + list(range(1, 21)), dtype=np.float64)
    distribution = numeric_distribution(values)
    assert distribution.edges[0] == 0.0
    assert len(set(distribution.edges)) == len(distribution.edges)
    assert distribution.shares[0] == pytest.approx(0.8)
    assert distribution.median == 0.0


def test_inconsistent_metadata_is_refused_naming_the_field(stored: dict[str, object]) -> None:
    broken = {field: dict(entry) for field, entry in stored[METADATA_KEY].items()}  # type: ignore[attr-defined]
    broken["income"]["shares"] = broken["income"]["shares"][:-1]
    with pytest.raises(ValueError, match=r"\[income\]"):
        from_metadata(broken)
    del broken["income"]
    with pytest.raises(ValueError, match="income"):
        from_metadata(broken)
