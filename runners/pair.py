"""Two ONNX models joined in one session: a canary's champion and challenger in one call.

Under a canary most merged flushes hold a challenger row or two beside the champion's rows
(5% of 16 requests: 56% of flushes). Two calls cost the second call's fixed part again, which
between a request's other work is most of it: ~28 us a flush, ~1 us a request
(`python -m bench.canary_path`). The joined graph takes the whole flush and the positions of
the challenger's rows: the champion's nodes score every row (one more row or two), a Gather
hands the challenger's nodes their rows, and both outputs come back from one run.

The joined graph holds each model's own nodes and attributes unchanged, so each output is the
same to the bit as its model's session gives (`join` checks it on probe rows and returns None
otherwise, as it does for graphs it cannot join: the caller then makes two calls).
"""

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, compose, helper

from runners.base import FeatureMatrix, Probabilities
from runners.model_store import onnx_file
from runners.onnx_runner import OnnxRunner, direct_run, session_options

logger = logging.getLogger("credit_risk")

SECOND = "second."  # the prefix of the second model's names in the joined graph
ROWS = "joined.rows"  # the input naming the second model's rows (int64 positions)
GATHER_OPSET = 13  # the default domain's version the Gather node needs, when no graph has one
PROBE_ROWS = 256


@dataclass
class JoinedPair:
    """One session scoring two models' rows; `predict` is a runners.base.JoinedCall."""

    session: ort.InferenceSession
    input_name: str
    output_names: list[str]

    def __post_init__(self) -> None:
        self._run = direct_run(self.session, ort.__version__)
        self._run_options = ort.RunOptions()

    def predict(
        self, features: FeatureMatrix, positions: npt.NDArray[np.int64]
    ) -> tuple[Probabilities, Probabilities]:
        first, second = self._run(
            self.output_names, {self.input_name: features, ROWS: positions}, self._run_options
        )
        return np.ascontiguousarray(first[:, 1]), np.ascontiguousarray(second[:, 1])


def join(first: OnnxRunner, second: OnnxRunner, *, threads: int = 1) -> JoinedPair | None:
    """The two models in one session, or None (logged) when they cannot be joined exactly: not
    both on the CPU, graphs of other shapes, conflicting operator sets, or outputs that differ
    from their own sessions' on probe rows."""
    if first.device != "cpu" or second.device != "cpu":
        return None
    try:
        model = _joined_graph(_load(first), _load(second))
        options = session_options(threads)
        session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    except _CannotJoin as error:
        logger.info("%s and %s score in two calls: %s", first.tag, second.tag, error)
        return None
    except Exception as error:  # onnx and ORT raise several unrelated types for a bad graph
        logger.warning(
            "%s and %s score in two calls: joining them failed (%s)",
            first.tag,
            second.tag,
            type(error).__name__,
        )
        return None
    outputs = [session.get_outputs()[0].name, session.get_outputs()[1].name]
    pair = JoinedPair(session, session.get_inputs()[0].name, outputs)
    if not _same_answers(pair, first, second):
        logger.warning("%s and %s score in two calls: joined answers differ", first.tag, second.tag)
        return None
    return pair


class _CannotJoin(ValueError):
    pass


def _load(runner: OnnxRunner) -> onnx.ModelProto:
    return onnx.load(str(onnx_file(runner.stored)))


def _joined_graph(first: onnx.ModelProto, second: onnx.ModelProto) -> onnx.ModelProto:
    """first's nodes on every row, second's (names prefixed) on Gather(rows, ROWS); the
    probabilities outputs (each graph's second output, as OnnxRunner reads it) of both."""
    opsets = _merged_opsets(first, second)
    second = compose.add_prefix(second, SECOND)
    a, b = first.graph, second.graph
    if len(a.input) != 1 or len(b.input) != 1 or len(a.output) < 2 or len(b.output) < 2:
        raise _CannotJoin("a graph has other inputs or outputs than one matrix in, two out")
    gather = helper.make_node("Gather", [a.input[0].name, ROWS], [b.input[0].name], axis=0)
    graph = helper.make_graph(
        [*a.node, gather, *b.node],
        "joined",
        [a.input[0], helper.make_tensor_value_info(ROWS, TensorProto.INT64, [None])],
        [a.output[1], b.output[1]],
        initializer=[*a.initializer, *b.initializer],
        value_info=[*a.value_info, *b.value_info],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()],
        ir_version=max(first.ir_version, second.ir_version),
    )
    onnx.checker.check_model(model)
    return model


def _merged_opsets(first: onnx.ModelProto, second: onnx.ModelProto) -> dict[str, int]:
    opsets: dict[str, int] = {}
    for model in (first, second):
        for entry in model.opset_import:
            if opsets.setdefault(entry.domain, entry.version) != entry.version:
                raise _CannotJoin(f"operator set {entry.domain or 'ai.onnx'} versions differ")
    opsets.setdefault("", GATHER_OPSET)
    return opsets


def _same_answers(pair: JoinedPair, first: OnnxRunner, second: OnnxRunner) -> bool:
    """Both outputs equal to the bit to each model's own session, on rows spread over the
    range of every feature the models split on (and none, half and all rows to the second)."""
    probe = _probe_rows(np.random.default_rng(0), first.n_features)
    alone_first = first.predict(probe)
    for positions in (
        np.empty(0, dtype=np.int64),
        np.arange(0, PROBE_ROWS, 2, dtype=np.int64),
        np.arange(PROBE_ROWS, dtype=np.int64),
    ):
        joined_first, joined_second = pair.predict(probe, positions)
        if not np.array_equal(joined_first, alone_first):
            return False
        if len(positions) and not np.array_equal(joined_second, second.predict(probe[positions])):
            return False
    return True


def _probe_rows(rng: np.random.Generator, width: int) -> FeatureMatrix:
    """Values from 0 to 10^6 on a log scale, and 0/1 indicators: every split of an applicant's
    encoded row (amounts, counts, one-hot categories) is crossed both ways by some rows."""
    values = np.exp(rng.uniform(-3.0, 14.0, (PROBE_ROWS, width))) - 0.05
    values[rng.random((PROBE_ROWS, width)) < 0.3] = 0.0
    values[rng.random((PROBE_ROWS, width)) < 0.3] = 1.0
    return np.ascontiguousarray(values, dtype=np.float32)
