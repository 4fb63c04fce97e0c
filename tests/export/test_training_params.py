"""`python -m export --param NAME=VALUE`: another model version, same guards, parameters on record."""

import json
import os
import subprocess
import sys
from typing import Any

import bentoml
import numpy as np
import pytest

from export.__main__ import main as export_main
from export.dataset import applicant_records, load_applicants, split_applicants
from export.onnx_convert import PARITY_TOLERANCE
from export.params import parse_params
from export.pipeline import ExportSummary, run_export
from export.store import NATIVE_MODEL_NAME, ONNX_MODEL_NAME
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

# Few rounds keep the test quick; subsample < 1 makes the booster's seed matter.
PARAMS = ["max_depth=4", "eta=0.3", "num_boost_round=20", "subsample=0.8", "seed=7"]
CHOSEN = {"max_depth": 4, "eta": 0.3, "num_boost_round": 20, "subsample": 0.8, "seed": 7}


def _cli_args(params: list[str]) -> list[str]:
    return [arg for param in params for arg in ("--param", param)]


def _test_features(native_tag: str) -> np.ndarray:
    vectorizer = bentoml.models.get(native_tag).custom_objects["dict_vectorizer"]
    test = split_applicants(load_applicants()).test
    return np.asarray(vectorizer.transform(applicant_records(test)), dtype=np.float32)


def _onnx_probabilities(tag: str, features: np.ndarray) -> np.ndarray:
    return np.asarray(OnnxRunner.load(tag, device="cpu").predict(features))


def _metadata(tag: str) -> dict[str, Any]:
    return dict(bentoml.models.get(tag).info.metadata)


def _stored_tags() -> set[str]:
    return {str(m.tag) for name in (ONNX_MODEL_NAME, NATIVE_MODEL_NAME) for m in _list(name)}


def _list(name: str) -> list[bentoml.Model]:
    try:
        return list(bentoml.models.list(name))
    except bentoml.exceptions.NotFound:
        return []


@pytest.fixture(scope="module")
def param_export(exported: ExportSummary, bentoml_home: str) -> dict[str, object]:
    """The CLI's JSON summary of a real --param export (after the course model's)."""
    result = subprocess.run(
        [sys.executable, "-m", "export", *_cli_args(PARAMS)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENTOML_HOME": bentoml_home},
        timeout=300,
    )
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def test_param_model_is_another_version_with_its_parameters_on_record(
    exported: ExportSummary, param_export: dict[str, object]
) -> None:
    assert param_export["training_params"] == CHOSEN
    onnx_tag, native_tag = str(param_export["onnx_tag"]), str(param_export["native_tag"])
    assert onnx_tag != exported.onnx_tag and native_tag != exported.native_tag
    assert float(param_export["test_auc"]) >= 0.80  # type: ignore[arg-type]
    assert float(param_export["parity_max_abs_diff"]) <= PARITY_TOLERANCE  # type: ignore[arg-type]

    for tag in (onnx_tag, native_tag):
        meta = _metadata(tag)
        assert meta["training_params"] == CHOSEN
        assert meta["num_boost_round"] == 20
        xgb_params = meta["xgb_params"]
        assert {k: xgb_params[k] for k in ("max_depth", "eta", "subsample", "seed")} == {
            "max_depth": 4,
            "eta": 0.3,
            "subsample": 0.8,
            "seed": 7,
        }
        assert xgb_params["objective"] == "binary:logistic"
    course = _metadata(exported.onnx_tag)
    assert course["training_params"] == {}
    assert course["num_boost_round"] == 175
    assert course["xgb_params"]["max_depth"] == 3


def test_param_model_predicts_differently_and_its_onnx_matches_its_booster(
    exported: ExportSummary, param_export: dict[str, object]
) -> None:
    features = _test_features(exported.native_tag)
    course = _onnx_probabilities(exported.onnx_tag, features)
    challenger = _onnx_probabilities(str(param_export["onnx_tag"]), features)
    assert float(np.max(np.abs(challenger - course))) > 0.01
    native = XgboostRunner.load(str(param_export["native_tag"]), device="cpu").predict(features)
    np.testing.assert_allclose(challenger, native, atol=PARITY_TOLERANCE)


def test_same_seed_reproduces_the_model_and_another_seed_does_not(
    exported: ExportSummary, param_export: dict[str, object]
) -> None:
    features = _test_features(exported.native_tag)
    first = _onnx_probabilities(str(param_export["onnx_tag"]), features)

    again = run_export(params=parse_params(PARAMS))
    assert again.onnx_tag != param_export["onnx_tag"]
    np.testing.assert_array_equal(_onnx_probabilities(again.onnx_tag, features), first)

    other_seed = [p for p in PARAMS if not p.startswith("seed=")] + ["seed=8"]
    other = run_export(params=parse_params(other_seed))
    assert other.training_params["seed"] == 8
    assert not np.array_equal(_onnx_probabilities(other.onnx_tag, features), first)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["depth=4"], "depth"),
        (["max_depth=deep"], "max_depth"),
        (["max_depth=3.5"], "max_depth"),
        (["max_depth=0"], "max_depth"),
        (["eta=0"], "eta"),
        (["eta=nan"], "eta"),
        (["subsample=1.5"], "subsample"),
        (["num_boost_round=-5"], "num_boost_round"),
        (["seed=x"], "seed"),
        (["objective=reg:squarederror"], "objective"),
        (["max_depth"], "max_depth"),
        (["eta=0.2", "eta=0.3"], "eta"),
        (["eta=0.2", "gamma=-1"], "gamma"),
    ],
)
def test_bad_param_is_one_line_naming_it_exit_2_nothing_saved(
    exported: ExportSummary, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    before = _stored_tags()
    assert export_main(_cli_args(args)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], err
    assert _stored_tags() == before


def test_param_model_below_the_auc_floor_is_refused_and_not_saved(
    exported: ExportSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    """The course model's guards hold for --param models: one stump cannot reach AUC 0.80."""
    before = _stored_tags()
    assert export_main(_cli_args(["max_depth=1", "num_boost_round=1"])) == 1
    assert "test AUC" in capsys.readouterr().err
    assert _stored_tags() == before
