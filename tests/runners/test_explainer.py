"""The explainer against XGBoost, SHAP's own TreeSHAP, hand-worked trees and the ONNX model."""

import json
from typing import Any

import numpy as np
import pytest
import shap
import xgboost as xgb

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from features.schema import FIELDS
from runners.contribution_table import (
    BY_SLOT_ROWS,
    ContributionTable,
    _realising_rows,
    unsupported_reason,
)
from runners.explainer import Explainer, Explanation, field_grouping
from runners.model_store import load_booster
from runners.onnx_runner import OnnxRunner

METHODS = ("table", "xgboost")


@pytest.fixture(scope="module")
def explainers(exported: ExportSummary) -> dict[str, Explainer]:
    return {m: Explainer.load(exported.onnx_tag, device="cpu", method=m) for m in METHODS}


@pytest.fixture(scope="module")
def booster(exported: ExportSummary) -> xgb.Booster:
    return load_booster(exported.native_tag)[1]


@pytest.fixture(scope="module")
def onnx_runner(exported: ExportSummary) -> OnnxRunner:
    return OnnxRunner.load(exported.onnx_tag, device="cpu")


@pytest.fixture(scope="module")
def features(explainers: dict[str, Explainer], records: list[dict[str, Any]]) -> np.ndarray:
    """Every row of the dataset, encoded in the model's feature order."""
    return FeatureEncoder(explainers["table"].feature_names).encode_rows(records)


@pytest.fixture(scope="module")
def raw_contributions(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    """XGBoost's per-column values (n, n_features + 1), bias last."""
    return booster.predict(xgb.DMatrix(features), pred_contribs=True)


@pytest.fixture(scope="module")
def explained(explainers: dict[str, Explainer], features: np.ndarray) -> dict[str, Explanation]:
    return {method: explainers[method].contributions(features) for method in METHODS}


def group_by_name(per_column: np.ndarray, feature_names: tuple[str, ...]) -> np.ndarray:
    """Independent grouping: add each column into the field named before its "=", by loop."""
    out = np.zeros((len(per_column), len(FIELDS)))
    for column, name in enumerate(feature_names):
        field = name.split("=")[0] if "=" in name else name
        out[:, FIELDS.index(field)] += per_column[:, column]
    return out


def logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p / (1 - p))


@pytest.mark.parametrize("method", METHODS)
def test_bias_plus_contributions_is_the_logit_of_the_probability(
    explained: dict[str, Explanation], features: np.ndarray, method: str
) -> None:
    explanation = explained[method]
    assert explanation.contributions.shape == (len(features), len(FIELDS))
    assert explanation.contributions.dtype == np.float32
    assert explanation.probability.dtype == np.float32
    total = explanation.bias + explanation.contributions.sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(total, logit(explanation.probability), atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_probability_matches_the_booster_and_the_onnx_model(
    explained: dict[str, Explanation],
    booster: xgb.Booster,
    onnx_runner: OnnxRunner,
    features: np.ndarray,
    expected_probability: np.ndarray,
    method: str,
) -> None:
    probability = explained[method].probability
    np.testing.assert_allclose(probability, booster.inplace_predict(features), atol=1e-6)
    np.testing.assert_allclose(probability, expected_probability, atol=1e-5)
    np.testing.assert_allclose(probability, onnx_runner.predict(features), atol=1e-5)


def test_bias_is_the_pred_contribs_bias_column_not_shaps_expected_value(
    explainers: dict[str, Explainer], raw_contributions: np.ndarray, booster: xgb.Booster
) -> None:
    assert np.ptp(raw_contributions[:, -1]) == 0
    for method in METHODS:
        assert explainers[method].contributions(raw_contributions[:1, :-1]).bias == pytest.approx(
            float(raw_contributions[0, -1]), abs=1e-7
        )
    # shap 0.51 reports a different base value for this booster (its own tree parse): using it
    # would break bias + sum(contributions) == logit(p) by that difference.
    shap_base = float(np.ravel(shap.TreeExplainer(booster).expected_value)[0])
    assert abs(shap_base - float(raw_contributions[0, -1])) > 0.01


@pytest.mark.parametrize("method", METHODS)
def test_grouping_matches_an_independent_grouping_of_xgboost_columns(
    explainers: dict[str, Explainer],
    explained: dict[str, Explanation],
    raw_contributions: np.ndarray,
    method: str,
) -> None:
    expected = group_by_name(raw_contributions[:, :-1], explainers[method].feature_names)
    np.testing.assert_allclose(explained[method].contributions, expected, atol=1e-5)


def test_field_grouping_matrix_sends_each_column_to_its_field() -> None:
    grouping = field_grouping(("age", "home=rent", "home=owner", "records=yes"))
    assert grouping.shape == (4, len(FIELDS))
    assert grouping.sum(axis=1).tolist() == [1, 1, 1, 1]
    assert grouping[:, FIELDS.index("home")].tolist() == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="'salary'"):
        field_grouping(("age", "salary"))


@pytest.fixture(scope="module")
def shap_values(booster: xgb.Booster, features: np.ndarray) -> dict[str, np.ndarray]:
    """shap's per-column values two ways. For an XGBoost booster shap.TreeExplainer calls
    XGBoost's pred_contribs ("default"); marking its parsed ensemble "internal" makes it run
    shap's own C++ TreeSHAP on its own parse of the trees, an independent implementation. That
    path's additivity check uses shap's base value, which differs from XGBoost's (see above), so
    the check is off there; additivity is tested on our side."""
    internal = shap.TreeExplainer(booster)
    internal.model.model_type = "internal"
    return {
        "internal": internal.shap_values(features, check_additivity=False),
        "default": shap.TreeExplainer(booster).shap_values(features),
    }


@pytest.mark.parametrize("path", ["internal", "default"])
@pytest.mark.parametrize("method", METHODS)
def test_contributions_equal_shaps_treeshap_grouped_per_field(
    explained: dict[str, Explanation],
    explainers: dict[str, Explainer],
    shap_values: dict[str, np.ndarray],
    method: str,
    path: str,
) -> None:
    expected = group_by_name(shap_values[path], explainers[method].feature_names)
    np.testing.assert_allclose(explained[method].contributions, expected, atol=1e-3)


def threshold_rows(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    """Dataset rows with one feature set exactly on, or just below, one of its split thresholds
    (where `<` versus `<=` would matter), and rows with missing values (default directions)."""
    trees = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"][
        "trees"
    ]
    rng = np.random.default_rng(7)
    rows = []
    for tree in trees[:60]:
        for node, child in enumerate(tree["left_children"]):
            if child == -1:
                continue
            threshold = np.float32(tree["split_conditions"][node])
            for value in (threshold, np.nextafter(threshold, np.float32(-np.inf))):
                row = features[rng.integers(len(features))].copy()
                row[tree["split_indices"][node]] = value
                rows.append(row)
    missing = features[:200].copy()
    missing[rng.random(missing.shape) < 0.2] = np.nan
    return np.vstack([np.array(rows), missing]).astype(np.float32)


def test_table_equals_pred_contribs_on_split_thresholds_and_missing_values(
    explainers: dict[str, Explainer], booster: xgb.Booster, features: np.ndarray
) -> None:
    rows = threshold_rows(booster, features)
    table = explainers["table"].contributions(rows)
    native = explainers["xgboost"].contributions(rows)
    np.testing.assert_allclose(table.contributions, native.contributions, atol=1e-5)
    np.testing.assert_allclose(table.probability, booster.inplace_predict(rows), atol=1e-6)


def test_one_row_and_empty_batches(
    explainers: dict[str, Explainer], explained: dict[str, Explanation], features: np.ndarray
) -> None:
    for method, explainer in explainers.items():
        one = explainer.contributions(features[5:6])
        assert one.contributions.shape == (1, len(FIELDS))
        np.testing.assert_allclose(
            one.contributions[0], explained[method].contributions[5], atol=1e-6
        )
        empty = explainer.contributions(features[:0])
        assert len(empty) == 0
        assert empty.contributions.shape == (0, len(FIELDS))
        assert empty.bias == one.bias
        with pytest.raises(ValueError, match="29"):
            explainer.contributions(features[:, :5])


def test_from_bytes_gives_the_same_explanations(
    explainers: dict[str, Explainer],
    explained: dict[str, Explanation],
    booster: xgb.Booster,
    features: np.ndarray,
) -> None:
    names = explainers["table"].feature_names
    for raw in (booster.save_raw("ubj"), booster.save_raw("json")):
        rebuilt = Explainer.from_bytes(bytes(raw), names)
        assert rebuilt.method == "table"
        np.testing.assert_array_equal(
            rebuilt.contributions(features).contributions, explained["table"].contributions
        )
    with pytest.raises(ValueError, match="28 feature names"):
        Explainer.from_bytes(bytes(booster.save_raw("ubj")), names[:-1])


def test_auto_uses_the_table_for_this_model_and_xgboost_for_deep_trees(
    explainers: dict[str, Explainer],
) -> None:
    assert Explainer(explainers["table"].booster, explainers["table"].feature_names).method == (
        "table"
    )
    rng = np.random.default_rng(3)
    noise_labels = rng.integers(0, 2, 300)  # no clean split: the trees grow to full depth
    deep = _train(rng.random((300, 2), dtype=np.float32), noise_labels, {"max_depth": 5}, rounds=3)
    assert "internal nodes" in str(unsupported_reason(deep))
    assert Explainer(deep, ("age", "income")).method == "xgboost"
    with pytest.raises(ValueError, match="internal nodes"):
        Explainer(deep, ("age", "income"), method="table")


# --- Tiny models whose contributions are worked out by hand --------------------------------


def _train(
    x: np.ndarray, y: np.ndarray | None, params: dict[str, Any], rounds: int = 1
) -> xgb.Booster:
    labels = (x[:, 0] > 50).astype(int) if y is None else y
    base = {"objective": "binary:logistic", "base_score": 0.5, "nthread": 1}
    return xgb.train({**base, **params}, xgb.DMatrix(x, label=labels), num_boost_round=rounds)


def _field(explanation: Explanation, row: int, field: str) -> float:
    return float(explanation.contributions[row, FIELDS.index(field)])


@pytest.mark.parametrize("method", METHODS)
def test_single_depth_one_tree_by_hand(method: str) -> None:
    """One split on age, trained on 4 rows: ages 25 (default) and 50, 50, 50 (repaid).

    base_score 0.5: base margin logit(0.5) = 0, every row's gradient p - y = -0.5 (y=1) or +0.5
    (y=0) and hessian p(1-p) = 0.25. eta 1, lambda 0: a leaf's value is -sum(g) / sum(h):
        left  (age 25): -(-0.5) / 0.25          = +2
        right (age 50): -(3 * 0.5) / (3 * 0.25) = -2
    Cover (sum of hessians): left 0.25, right 0.75, so the tree's expected value is
        0.25/1 * 2 + 0.75/1 * (-2) = -1 = bias.
    TreeSHAP of a single split: the split feature gets leaf - expected value, others 0:
        age 25: 2 - (-1) = +3;   age 50: -2 - (-1) = -1.
    Additivity: -1 + 3 = 2 = margin of age 25; -1 - 1 = -2 = margin of age 50.
    """
    x = np.array([[25, 100], [50, 100], [50, 100], [50, 100]], dtype=np.float32)
    y = np.array([1, 0, 0, 0])
    booster = _train(x, y, {"max_depth": 1, "eta": 1.0, "lambda": 0.0, "min_child_weight": 0.0})
    explanation = Explainer(booster, ("age", "income"), method=method).contributions(x[:2])
    assert explanation.bias == pytest.approx(-1.0, abs=1e-6)
    assert _field(explanation, 0, "age") == pytest.approx(3.0, abs=1e-6)
    assert _field(explanation, 1, "age") == pytest.approx(-1.0, abs=1e-6)
    assert _field(explanation, 0, "income") == 0.0
    others = [f for f in FIELDS if f not in ("age", "income")]
    assert not explanation.contributions[:, [FIELDS.index(f) for f in others]].any()
    expected_p = 1 / (1 + np.exp(-np.array([2.0, -2.0])))
    np.testing.assert_allclose(explanation.probability, expected_p, atol=1e-6)


def _hand_built_depth_two_tree() -> xgb.Booster:
    """A booster whose one tree is written by hand (a trained model's JSON, tree replaced):

        node 0: age < 30 ? node 1 : node 2            cover 8
        node 1: income < 100 ? node 3 : node 4        cover 4
        node 3: leaf a = +4                           cover 1
        node 4: leaf b =  0                           cover 3
        node 2: leaf c = -2                           cover 4
    base_score 0.5 (base margin 0).
    """
    booster = _train(np.array([[20, 50], [40, 150]], dtype=np.float32), None, {"max_depth": 1})
    model = json.loads(bytes(booster.save_raw("json")))
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    nodes = 5
    tree.update(
        left_children=[1, 3, -1, -1, -1],
        right_children=[2, 4, -1, -1, -1],
        parents=[2147483647, 0, 0, 1, 1],
        split_indices=[0, 1, 0, 0, 0],
        split_conditions=[30.0, 100.0, -2.0, 4.0, 0.0],
        base_weights=[0.0, 0.0, -2.0, 4.0, 0.0],
        default_left=[0] * nodes,
        split_type=[0] * nodes,
        loss_changes=[1.0, 1.0, 0.0, 0.0, 0.0],
        sum_hessian=[8.0, 4.0, 4.0, 1.0, 3.0],
    )
    tree["tree_param"]["num_nodes"] = str(nodes)
    rebuilt = xgb.Booster()
    rebuilt.load_model(bytearray(json.dumps(model).encode()))
    return rebuilt


@pytest.mark.parametrize("method", METHODS)
def test_hand_built_depth_two_tree_by_hand(method: str) -> None:
    """Path-dependent TreeSHAP of the tree above, by the Shapley formula over {age, income}.

    v(S) is the tree's expected value when the features in S follow the row and the others are
    averaged by cover. v({}) = (1*4 + 3*0 + 4*(-2)) / 8 = -0.5 = bias. For two features:
        phi_age    = 1/2 [(v(age) - v({})) + (v(age, income) - v(income))]
        phi_income = 1/2 [(v(income) - v({})) + (v(age, income) - v(age))]
    Row (25, 50), leaf a: v(age) = (1*4 + 3*0)/4 = 1; v(income) = 1/2*4 + 1/2*(-2) = 1; v(both)
        = 4.  phi_age = 1/2 [1.5 + 3] = 2.25; phi_income = 1/2 [1.5 + 3] = 2.25.
    Row (40, 50), leaf c: v(age) = -2; v(income) = 1; v(both) = -2.
        phi_age = 1/2 [-1.5 - 3] = -2.25; phi_income = 1/2 [1.5 + 0] = 0.75: income counts
        although this row's path never tests it (the table must use off-path directions).
    Row (25, 150), leaf b: v(age) = 1; v(income) = 1/2*0 + 1/2*(-2) = -1; v(both) = 0.
        phi_age = 1/2 [1.5 + 1] = 1.25; phi_income = 1/2 [-0.5 - 1] = -0.75.
    Each row: -0.5 + phi_age + phi_income = its leaf (4, -2, 0).
    """
    booster = _hand_built_depth_two_tree()
    rows = np.array([[25, 50], [40, 50], [25, 150]], dtype=np.float32)
    np.testing.assert_allclose(booster.inplace_predict(rows, predict_type="margin"), [4, -2, 0])
    explanation = Explainer(booster, ("age", "income"), method=method).contributions(rows)
    assert explanation.bias == pytest.approx(-0.5, abs=1e-6)
    np.testing.assert_allclose(
        [[_field(explanation, r, "age"), _field(explanation, r, "income")] for r in range(3)],
        [[2.25, 2.25], [-2.25, 0.75], [1.25, -0.75]],
        atol=1e-6,
    )


def test_table_of_the_hand_built_tree_holds_the_hand_worked_values() -> None:
    """One table row per direction pattern (bit 0: age < 30, bit 1: income < 100); the last
    pattern, as above: v(age) = -2, v(income) = 1/2*0 + 1/2*(-2) = -1, v(both) = -2, so
    phi_age = 1/2 [-1.5 - 1] = -1.25 and phi_income = 1/2 [-0.5 + 0] = -0.25."""
    booster = _hand_built_depth_two_tree()
    table = ContributionTable.build(booster, field_grouping(("age", "income")))
    age, income = FIELDS.index("age"), FIELDS.index("income")
    by_pattern = {p: table.table[p][[age, income]].tolist() for p in range(4)}
    assert by_pattern[0b11] == pytest.approx([2.25, 2.25])  # age < 30, income < 100
    assert by_pattern[0b01] == pytest.approx([1.25, -0.75])  # age < 30, income >= 100
    assert by_pattern[0b10] == pytest.approx([-2.25, 0.75])  # age >= 30, income < 100
    assert by_pattern[0b00] == pytest.approx([-1.25, -0.25])  # age >= 30, income >= 100
    assert not table.table[4:].any()


def test_realising_rows_take_each_possible_pattern_and_skip_impossible_ones() -> None:
    """Slot 0: age < 30, slot 1: age < 20 (same feature). "age >= 30 and age < 20" (bit 0 clear,
    bit 1 set: pattern 0b10) cannot happen; the others get a row that goes exactly that way."""
    patterns, rows = _realising_rows(
        np.array([0, 0], dtype=np.intp), np.array([30, 20], dtype=np.float32), n_features=2
    )
    assert patterns.tolist() == [0b00, 0b01, 0b11]
    ages = rows[:, 0]
    assert ages[0] == 30  # >= 30 and >= 20
    assert ages[1] == 20  # < 30 and >= 20
    assert ages[2] == np.nextafter(np.float32(20), np.float32(0))  # < 20: just below
    assert not rows[:, 1].any()  # the unused feature stays 0


def test_direction_patterns_equal_packbits_of_the_directions(
    explainers: dict[str, Explainer], booster: xgb.Booster, features: np.ndarray
) -> None:
    """Both ways to the pattern bytes (row by row: a uint64 multiply packs 8 direction bytes;
    slot by slot: a weighted sum over the slot axis), against numpy's packbits, on threshold
    rows and missing values, and with the rows few enough for each way."""
    table = explainers["table"]._table
    assert table is not None
    rows = threshold_rows(booster, features)
    left = (rows[:, table.slot_features] < table.slot_thresholds) | (
        np.isnan(rows[:, table.slot_features]) & table.slot_default_left
    )
    packed = np.packbits(left.reshape(len(rows), table.n_trees, 8), axis=-1, bitorder="little")
    expected = packed[:, :, 0]
    assert len(rows) >= BY_SLOT_ROWS and np.isnan(rows).any()
    np.testing.assert_array_equal(table._patterns_by_row(rows), expected)
    np.testing.assert_array_equal(table._patterns_by_slot(rows).T, expected)
    np.testing.assert_array_equal(table.patterns(rows), expected)  # by slot
    few = BY_SLOT_ROWS - 1
    np.testing.assert_array_equal(table.patterns(rows[-few:]), expected[-few:])  # by row
