"""Encoding: DictVectorizer vs the vectorised FeatureEncoder, 1 and 4096 applicants."""

import bentoml
import numpy as np
import pytest

from bench.conftest import rows_of
from export.pipeline import ExportSummary
from features.encoder import FeatureEncoder


@pytest.mark.parametrize("rows", [1, 4096])
@pytest.mark.parametrize("encoder_name", ["dictvectorizer", "feature_encoder"])
def test_encoding(
    benchmark, records, exported: ExportSummary, encoder_name: str, rows: int
) -> None:
    vectorizer = bentoml.models.get(exported.native_tag).custom_objects["dict_vectorizer"]
    encoder = FeatureEncoder(tuple(str(n) for n in vectorizer.get_feature_names_out()))
    batch = rows_of(records, rows)
    if encoder_name == "dictvectorizer":
        call = lambda: vectorizer.transform(batch).astype(np.float32)  # noqa: E731
    else:
        call = lambda: encoder.encode_rows(batch)  # noqa: E731
    benchmark.group = f"encoding, {rows} rows"
    benchmark.extra_info.update(encoder=encoder_name, rows=rows)
    out = benchmark(call)
    np.testing.assert_array_equal(out, vectorizer.transform(batch).astype(np.float32))
