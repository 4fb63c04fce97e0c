"""Two real ONNX models joined in one session (runners/pair.py): each output is its model's own
answer to the bit, for any rows the second model is given; graphs that cannot be joined are
refused, so the canary keeps its two calls."""

from typing import Any

import numpy as np
import onnx
import pytest

from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder
from runners.model_store import onnx_file
from runners.onnx_runner import OnnxRunner
from runners.pair import _CannotJoin, _joined_graph, join


def test_each_model_answers_its_own_rows_to_the_bit(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]]
) -> None:
    first, second = OnnxRunner.load(exported.onnx_tag), OnnxRunner.load(other_model)
    features = FeatureEncoder(first.stored.feature_names).encode_rows(records[:500])
    alone_first, alone_second = first.predict(features), second.predict(features)
    assert not np.array_equal(alone_first, alone_second)  # two different models
    pair = join(first, second)
    assert pair is not None
    for positions in ([], [7], [0, 1, 2], list(range(1, 500, 3)), list(range(500))):
        at = np.array(positions, dtype=np.int64)
        own, theirs = pair.predict(features, at)
        np.testing.assert_array_equal(own, alone_first)
        np.testing.assert_array_equal(theirs, alone_second[at])
    own, theirs = pair.predict(features[:1], np.array([0], dtype=np.int64))  # a lone row
    assert own[0] == alone_first[0] and theirs[0] == alone_second[0]


def test_graphs_with_conflicting_operator_sets_are_not_joined(exported: ExportSummary) -> None:
    first = onnx.load(str(onnx_file(OnnxRunner.load(exported.onnx_tag).stored)))
    second = onnx.ModelProto()
    second.CopyFrom(first)
    for entry in second.opset_import:
        entry.version += 1  # the same domain at another version: not one graph
    with pytest.raises(_CannotJoin, match="versions differ"):
        _joined_graph(first, second)
