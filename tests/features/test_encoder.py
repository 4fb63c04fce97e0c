import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer

from export.dataset import applicant_records, load_applicants
from features.encoder import CategoryCodes, FeatureEncoder
from features.schema import CATEGORICAL_FIELDS, FIELDS, categories


@pytest.fixture(scope="module")
def records() -> list[dict[str, object]]:
    return applicant_records(load_applicants())


@pytest.fixture(scope="module")
def vectorizer(records: list[dict[str, object]]) -> DictVectorizer:
    return DictVectorizer(sparse=False).fit(records)


def _encoder(vectorizer: DictVectorizer) -> FeatureEncoder:
    return FeatureEncoder(tuple(str(n) for n in vectorizer.get_feature_names_out()))


def test_rows_match_dictvectorizer_for_every_row(records, vectorizer) -> None:
    expected = vectorizer.transform(records).astype(np.float32)
    actual = _encoder(vectorizer).encode_rows(records)
    assert actual.dtype == np.float32 and actual.flags.c_contiguous
    np.testing.assert_array_equal(actual, expected)


def test_one_row_at_a_time_matches(records, vectorizer) -> None:
    encoder = _encoder(vectorizer)
    expected = vectorizer.transform(records).astype(np.float32)
    for i in range(0, len(records), 7):
        np.testing.assert_array_equal(encoder.encode_one(records[i]), expected[i : i + 1])


def test_columns_match_as_lists_and_numpy_arrays(records, vectorizer) -> None:
    encoder = _encoder(vectorizer)
    expected = vectorizer.transform(records).astype(np.float32)
    as_lists = {name: [r[name] for r in records] for name in FIELDS}
    np.testing.assert_array_equal(encoder.encode_columns(as_lists), expected)
    as_arrays = {name: np.asarray(values) for name, values in as_lists.items()}
    assert as_arrays["home"].dtype.kind == "U"
    np.testing.assert_array_equal(encoder.encode_columns(as_arrays), expected)


def _as_codes(values: list[object], allowed: tuple[str, ...]) -> CategoryCodes:
    position = {name: i for i, name in enumerate(allowed)}
    return CategoryCodes(np.array([position.get(v, -1) for v in values]), allowed)  # type: ignore[call-overload]


def test_columns_as_category_codes_match(records, vectorizer) -> None:
    """Codes (how the CSV and Arrow readers hand over categories) encode like the strings."""
    encoder = _encoder(vectorizer)
    expected = vectorizer.transform(records).astype(np.float32)
    columns: dict[str, object] = {name: [r[name] for r in records] for name in FIELDS}
    for name in CATEGORICAL_FIELDS:
        columns[name] = _as_codes(columns[name], categories(name))  # type: ignore[arg-type]
    np.testing.assert_array_equal(encoder.encode_columns(columns), expected)


def test_unseen_category_values_give_all_zeros_like_dictvectorizer(records) -> None:
    # Fit on rows without home=other, so "other" is unseen; also send a value nobody knows.
    seen = [r for r in records if r["home"] != "other"]
    vectorizer = DictVectorizer(sparse=False).fit(seen)
    assert "home=other" not in vectorizer.get_feature_names_out()
    encoder = _encoder(vectorizer)
    probes = [dict(records[0], home="other"), dict(records[1], job="astronaut"), records[2]]
    expected = vectorizer.transform(probes).astype(np.float32)
    np.testing.assert_array_equal(encoder.encode_rows(probes), expected)
    home_columns = [i for i, n in enumerate(encoder.feature_names) if n.startswith("home=")]
    assert not encoder.encode_one(probes[0])[0, home_columns].any()
    # The same as codes: "other" is a category the model never saw, "astronaut" is code -1.
    columns: dict[str, object] = {name: [p[name] for p in probes] for name in FIELDS}
    for name in CATEGORICAL_FIELDS:
        columns[name] = _as_codes(columns[name], categories(name))  # type: ignore[arg-type]
    assert columns["job"].codes[1] == -1  # type: ignore[attr-defined]
    np.testing.assert_array_equal(encoder.encode_columns(columns), expected)


def test_unknown_feature_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="numeric fields"):
        FeatureEncoder(("age",))
