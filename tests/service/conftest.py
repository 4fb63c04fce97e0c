"""Real `bentoml serve` processes on free loopback ports, against the session's model store."""

from collections.abc import Iterator
from pathlib import Path

import bentoml
import numpy as np
import onnxruntime as ort
import pytest

from export.dataset import applicant_records, load_applicants
from export.pipeline import ExportSummary
from service.process import ServedProcess, served


@pytest.fixture(scope="session")
def records() -> list[dict[str, object]]:
    return applicant_records(load_applicants())


@pytest.fixture(scope="session")
def expected_probability(exported: ExportSummary, records: list[dict[str, object]]) -> np.ndarray:
    """In-process ONNX Runtime on DictVectorizer features: independent of our encoder."""
    vectorizer = bentoml.models.get(exported.native_tag).custom_objects["dict_vectorizer"]
    features = vectorizer.transform(records).astype(np.float32)
    path = Path(bentoml.models.get(exported.onnx_tag).path) / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([session.get_outputs()[1].name], {"features": features})
    return np.asarray(probabilities)[:, 1]


@pytest.fixture(scope="session")
def server(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """The default configuration, production mode, 2 workers, pinned to the first export."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": "2"}
    with served(env, log_path=log, extra_args=("--production",)) as process:
        yield process
