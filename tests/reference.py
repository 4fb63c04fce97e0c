"""The model's probabilities computed independently of the server and of our encoder: the
export's own DictVectorizer and its ONNX file in ONNX Runtime (what every answer is checked
against)."""

from pathlib import Path

import bentoml
import numpy as np
import onnxruntime as ort

from export.pipeline import ExportSummary


def reference_probabilities(summary: ExportSummary, records: list[dict[str, object]]) -> np.ndarray:
    vectorizer = bentoml.models.get(summary.native_tag).custom_objects["dict_vectorizer"]
    features = vectorizer.transform(records).astype(np.float32)
    path = Path(bentoml.models.get(summary.onnx_tag).path) / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([session.get_outputs()[1].name], {"features": features})
    return np.asarray(probabilities)[:, 1]
