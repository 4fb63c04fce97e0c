"""The ONNX runner calls ORT's compiled session directly (`InferenceSession._sess.run`, skipping
the Python wrapper's per-call checks): this fails if onnxruntime changes that API."""

import numpy as np
import onnxruntime as ort

from export.pipeline import ExportSummary
from runners.onnx_runner import OnnxRunner


def test_direct_session_calls_equal_the_public_api(exported: ExportSummary) -> None:
    runner = OnnxRunner.load(exported.onnx_tag, device="cpu")
    assert isinstance(runner.session, ort.InferenceSession)
    assert callable(runner.session._sess.run)
    rows = np.random.default_rng(1).random((257, runner.n_features), dtype=np.float32)
    name = runner.session.get_inputs()[0].name
    (public,) = runner.session.run([runner.session.get_outputs()[1].name], {name: rows})
    np.testing.assert_array_equal(runner.predict(rows), public[:, 1])
    np.testing.assert_array_equal(runner.predict(rows[:1]), public[:1, 1])
