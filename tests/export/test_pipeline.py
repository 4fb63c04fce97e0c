import json
import os
import subprocess
import sys

import bentoml
import numpy as np
import onnx
import pytest

import export.pipeline
from export.__main__ import main as export_main
from export.dataset import load_applicants, split_applicants
from export.onnx_convert import PARITY_TOLERANCE, ParityError, check_parity, convert_booster
from export.pipeline import ExportSummary, run_export
from export.store import ONNX_MODEL_NAME
from export.train import train_model
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner


def test_export_saves_both_models_with_metadata(exported: ExportSummary) -> None:
    native = bentoml.models.get(exported.native_tag)
    stored_onnx = bentoml.models.get(exported.onnx_tag)
    assert exported.test_auc >= 0.80
    assert exported.parity_max_abs_diff <= PARITY_TOLERANCE
    assert exported.n_features == 29
    meta = stored_onnx.info.metadata
    assert meta["native_tag"] == exported.native_tag
    assert len(meta["feature_names"]) == exported.n_features
    assert meta["feature_names"] == native.info.metadata["feature_names"]
    assert meta["parity_max_abs_diff"] == exported.parity_max_abs_diff
    assert meta["test_auc"] >= 0.80
    assert meta["thresholds"] == {"maybe": 0.3, "declined": 0.5}
    assert len(meta["data_sha256"]) == 64
    assert "dict_vectorizer" in native.custom_objects


def test_cli_last_line_is_json_summary(bentoml_home: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "export"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENTOML_HOME": bentoml_home},
        timeout=300,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {
        "native_tag",
        "onnx_tag",
        "test_auc",
        "parity_max_abs_diff",
        "n_features",
        "seconds",
        "training_params",
    }
    assert summary["training_params"] == {}
    assert summary["onnx_tag"].startswith(f"{ONNX_MODEL_NAME}:")
    assert bentoml.models.get(summary["onnx_tag"]).tag.version == summary["onnx_tag"].split(":")[1]


def _tamper_one_leaf(model: onnx.ModelProto) -> onnx.ModelProto:
    """Changes the value of one tree leaf, the kind of corruption the guard must catch."""
    tampered = onnx.ModelProto()
    tampered.CopyFrom(model)
    for node in tampered.graph.node:
        if node.op_type == "TreeEnsembleClassifier":
            for attribute in node.attribute:
                if attribute.name == "class_weights":
                    attribute.floats[0] += 0.5
                    return tampered
    raise AssertionError("no tree ensemble in the converted model")


def test_tampered_onnx_model_fails_parity_guard() -> None:
    trained = train_model(split_applicants(load_applicants()))
    model = convert_booster(trained.booster, len(trained.feature_names))
    assert check_parity(model, trained.booster, trained.test_features) <= PARITY_TOLERANCE
    with pytest.raises(ParityError, match="exceeds the tolerance"):
        check_parity(_tamper_one_leaf(model), trained.booster, trained.test_features)


def test_export_refuses_tampered_conversion(
    exported: ExportSummary, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {str(m.tag) for m in bentoml.models.list(ONNX_MODEL_NAME)}
    real_convert = export.pipeline.convert_booster
    monkeypatch.setattr(
        export.pipeline,
        "convert_booster",
        lambda booster, n: _tamper_one_leaf(real_convert(booster, n)),
    )
    assert export_main([]) == 1
    assert "parity check failed" in capsys.readouterr().err
    assert {str(m.tag) for m in bentoml.models.list(ONNX_MODEL_NAME)} == before


def test_rollback_older_tag_still_loads_and_predicts_the_same(exported: ExportSummary) -> None:
    features = train_model(split_applicants(load_applicants())).test_features
    first_onnx = OnnxRunner.load(exported.onnx_tag, device="cpu").predict(features)
    first_native = XgboostRunner.load(exported.native_tag, device="cpu").predict(features)

    second = run_export()
    assert second.onnx_tag != exported.onnx_tag
    assert str(bentoml.models.get(f"{ONNX_MODEL_NAME}:latest").tag) == second.onnx_tag

    again = OnnxRunner.load(exported.onnx_tag, device="cpu")
    assert again.tag == exported.onnx_tag
    np.testing.assert_array_equal(again.predict(features), first_onnx)
    np.testing.assert_array_equal(
        XgboostRunner.load(exported.native_tag, device="cpu").predict(features), first_native
    )
    np.testing.assert_allclose(first_onnx, first_native, atol=PARITY_TOLERANCE)


def test_if_missing_skips_when_the_store_has_a_model(
    exported: ExportSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {str(m.tag) for m in bentoml.models.list(ONNX_MODEL_NAME)}
    assert export_main(["--if-missing"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert {str(m.tag) for m in bentoml.models.list(ONNX_MODEL_NAME)} == before
