"""Encoding: DictVectorizer (the course's) vs the vectorised FeatureEncoder, 1 and 4096 rows."""

from collections.abc import Callable

import bentoml
import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import record_rate, rows_of
from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder


@pytest.mark.parametrize("rows", [1, 4096])
@pytest.mark.parametrize("encoder_name", ["dictvectorizer", "feature_encoder"])
def test_encoding(
    benchmark: BenchmarkFixture,
    records: list[dict[str, object]],
    exported: ExportSummary,
    encoder_name: str,
    rows: int,
) -> None:
    vectorizer = bentoml.models.get(exported.native_tag).custom_objects["dict_vectorizer"]
    encoder = FeatureEncoder(tuple(str(n) for n in vectorizer.get_feature_names_out()))
    batch = rows_of(records, rows)
    encode: Callable[[list[dict[str, object]]], np.ndarray] = (
        (lambda rows: vectorizer.transform(rows).astype(np.float32))
        if encoder_name == "dictvectorizer"
        else encoder.encode_rows
    )
    benchmark.group = f"encoding, {rows} row{'s' if rows > 1 else ''}"
    benchmark.extra_info["encoder"] = encoder_name
    out = benchmark(encode, batch)
    np.testing.assert_array_equal(out, vectorizer.transform(batch).astype(np.float32))
    record_rate(benchmark, rows)
