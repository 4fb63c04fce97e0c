"""The ONNX runner calls ORT's compiled session directly (`InferenceSession._sess.run`, skipping
the Python wrapper's per-call checks) on a tested version: this fails if onnxruntime changes
that API; on any other version it uses the public `run`, with the same answers."""

import numpy as np
import onnxruntime as ort

from export.pipeline import ExportSummary
from runners.onnx_runner import TESTED_ORT, OnnxRunner, direct_run


def test_direct_session_calls_equal_the_public_api(exported: ExportSummary) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, device="cpu")
    assert isinstance(runner.session, ort.InferenceSession)
    assert callable(runner.session._sess.run)
    rows = np.random.default_rng(1).random((257, runner.n_features), dtype=np.float32)
    name = runner.session.get_inputs()[0].name
    (public,) = runner.session.run([runner.session.get_outputs()[1].name], {name: rows})
    np.testing.assert_array_equal(runner.predict(rows), public[:, 1])
    np.testing.assert_array_equal(runner.predict(rows[:1]), public[:1, 1])


def test_another_version_steps_aside_to_the_public_run(exported: ExportSummary) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, device="cpu")
    assert ort.__version__ in TESTED_ORT  # pyproject.toml pins a tested version
    public = direct_run(runner.session, "0.0.0-untested")
    assert public == runner.session.run  # the wrapper's bound method, not the compiled one's
    rows = np.random.default_rng(2).random((33, runner.n_features), dtype=np.float32)
    name, output = runner.session.get_inputs()[0].name, runner.session.get_outputs()[1].name
    (through_public,) = public([output], {name: rows}, ort.RunOptions())
    np.testing.assert_array_equal(runner.predict(rows), through_public[:, 1])
