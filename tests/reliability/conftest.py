"""Reliability fixtures: a deliberately slow model.

The slow model is the exported model plus a large matrix product whose result is multiplied by
zero and added to the probabilities: the same answers, but every model call takes about
`SLOW_CALL_S` on one thread, so requests really wait in the batcher's queue behind it. That makes
"queued while the model is busy" a state a test can reach over HTTP without sleeping inside the
server. The matrix is sized by timing one product on this machine: a fixed size took 1.2 s on one
2-core VM and 0.28 s on another, where tests that time out clients at 0.4 s behind it broke.
"""

import time
from pathlib import Path

import bentoml
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.pipeline import ExportSummary

SLOW_CALL_S = 1.2  # well above the 0.55 s the disconnect test's hasty clients need
PROBE_SIDE = 2048
SIDES = (2048, 8192)  # a K x K float32 matrix of ones: 16 MiB to 256 MiB


def slow_matrix_side(target_s: float = SLOW_CALL_S) -> int:
    """K such that ones(K, K) @ ones(K, K) takes about `target_s` of CPU on one ORT thread here
    (the cost grows as K**3), a multiple of 256 within SIDES."""
    square = helper.make_tensor_value_info("x", TensorProto.FLOAT, [PROBE_SIDE, PROBE_SIDE])
    product = helper.make_tensor_value_info("y", TensorProto.FLOAT, [PROBE_SIDE, PROBE_SIDE])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "x"], ["y"])], "probe", [square], [product]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options)
    ones = np.ones((PROBE_SIDE, PROBE_SIDE), np.float32)
    # CPU seconds, not wall: timed on a busy machine, wall time would size the matrix for the
    # contention of that moment, and the call would be far faster once it passed (a disconnect
    # test's 0.4 s clients were then answered). CPU time only ever takes longer in wall time.
    seconds = []
    for _ in range(3):
        started = time.process_time()
        session.run(None, {"x": ones})
        seconds.append(time.process_time() - started)
    side = PROBE_SIDE * (target_s / min(seconds)) ** (1 / 3)
    return int(np.clip(np.ceil(side / 256) * 256, *SIDES))


def slow_onnx_model(model: onnx.ModelProto, side: int) -> onnx.ModelProto:
    """`model` with a K x K matrix product that depends on the input (so ONNX Runtime cannot
    fold it away at load time) and contributes exactly 0 to the probabilities."""
    slow = onnx.ModelProto()
    slow.CopyFrom(model)
    graph = slow.graph
    (classifier,) = graph.node
    classifier.output[1] = "fast_probabilities"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(np.array([side, side], np.int64), "square"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("ReduceSum", ["features"], ["total"], keepdims=0),
            helper.make_node("Mul", ["total", "zero"], ["input_times_zero"]),
            helper.make_node("Add", ["input_times_zero", "one"], ["unit"]),
            helper.make_node("Expand", ["unit", "square"], ["ones"]),
            helper.make_node("MatMul", ["ones", "ones"], ["busy_work"]),
            helper.make_node("ReduceSum", ["busy_work"], ["busy_total"], keepdims=0),
            helper.make_node("Mul", ["busy_total", "zero"], ["nothing"]),
            helper.make_node("Add", ["fast_probabilities", "nothing"], ["probabilities"]),
        ]
    )
    slow.opset_import.append(helper.make_opsetid("", 15))
    onnx.checker.check_model(slow)
    return slow


@pytest.fixture(scope="session")
def slow_model_tag(exported: ExportSummary) -> str:
    """A stored ONNX model with the exported model's metadata (features, native twin, parity)
    that answers exactly like it, slowly."""
    good = bentoml.models.get(exported.onnx_tag)
    source = Path(good.path) / "model.onnx"
    with bentoml.models.create("credit_risk_onnx_slow", metadata=dict(good.info.metadata)) as model:
        slow = slow_onnx_model(onnx.load(str(source)), slow_matrix_side())
        onnx.save_model(slow, model.path_of("model.onnx"))
    return str(model.tag)
