"""Reason codes: the table, the row-wise reasons and the vectorised codes for bulk."""

from typing import Any

import bentoml
import numpy as np
import pytest

from export.pipeline import ExportSummary
from features.distributions import METADATA_KEY, from_metadata, medians
from features.encoder import FeatureEncoder
from features.reasons import CODES, REASON_TEXTS, TEXTS, MatrixReasonCoder, ReasonCoder
from features.schema import FIELDS, NUMERIC_FIELDS, categories

# Round numbers, so each direction below is obvious; the dataset tests use the stored medians.
MEDIANS = {field: 100.0 for field in NUMERIC_FIELDS}
APPLICANT: dict[str, Any] = {
    "seniority": 1,
    "home": "rent",
    "time": 100,  # equal to the median: reads as low
    "age": 150,
    "marital": "single",
    "records": "yes",
    "job": "partime",
    "expenses": 300,
    "income": 20.5,
    "assets": 0,
    "debt": 5000,
    "amount": 100.5,
    "price": 99.5,
}


def contributions_row(**by_field: float) -> np.ndarray:
    row = np.zeros(len(FIELDS), dtype=np.float32)
    for field, value in by_field.items():
        row[FIELDS.index(field)] = value
    return row


def test_every_code_is_unique_upper_case_and_has_a_text() -> None:
    assert len(set(CODES)) == len(CODES)
    assert all(code == code.upper() and code in TEXTS and TEXTS[code] for code in CODES)
    for code in ("DEBT_HIGH", "INCOME_LOW", "RECORDS_YES", "JOB_PARTIME", "HOME_RENT"):
        assert code in CODES
    assert set(REASON_TEXTS["home"]) == {*categories("home"), "unlisted"}


def test_top_reasons_are_the_positive_fields_largest_first() -> None:
    coder = ReasonCoder(MEDIANS)
    row = contributions_row(debt=0.9, records=1.2, income=0.4, age=-0.5, job=0.0, time=0.1)
    reasons = coder.top_reasons(row, APPLICANT, n=4)
    assert [r.field for r in reasons] == ["records", "debt", "income", "time"]
    assert [r.code for r in reasons] == ["RECORDS_YES", "DEBT_HIGH", "INCOME_LOW", "TIME_LOW"]
    assert reasons[1].value == 5000
    assert reasons[1].contribution == pytest.approx(0.9)
    assert reasons[1].text == REASON_TEXTS["debt"]["high"]
    assert reasons[0].as_dict() == {
        "field": "records",
        "value": "yes",
        "contribution": pytest.approx(1.2),
        "code": "RECORDS_YES",
        "text": "Previous record of arrears on file",
    }
    assert [r.field for r in coder.top_reasons(row, APPLICANT, n=2)] == ["records", "debt"]
    # zero and negative contributions are never reasons
    assert coder.top_reasons(contributions_row(age=-1.0), APPLICANT) == []


def test_directions_and_fallbacks() -> None:
    coder = ReasonCoder(MEDIANS)
    assert coder.key_of("amount", 100.5) == "high"
    assert coder.key_of("price", 99.5) == "low"
    assert coder.key_of("time", 100) == "low"  # at the median
    assert coder.key_of("job", "partime") == "partime"
    assert coder.key_of("job", "astronaut") == "unlisted"
    assert coder.key_of("job", "unlisted") == "unlisted"
    reasons = coder.top_reasons(contributions_row(home=0.3), {**APPLICANT, "home": "castle"})
    assert (reasons[0].code, reasons[0].value) == ("HOME_UNLISTED", "castle")
    with pytest.raises(ValueError, match="income"):
        ReasonCoder({f: 1.0 for f in NUMERIC_FIELDS if f != "income"})


@pytest.fixture(scope="module")
def stored_coder(exported: ExportSummary) -> tuple[ReasonCoder, MatrixReasonCoder]:
    metadata = bentoml.models.get(exported.onnx_tag).info.metadata
    coder = ReasonCoder(medians(from_metadata(metadata[METADATA_KEY])))
    return coder, coder.matrix_coder(tuple(metadata["feature_names"]))


def test_bulk_codes_agree_with_row_wise_reasons_on_the_dataset(
    stored_coder: tuple[ReasonCoder, MatrixReasonCoder], records: list[dict[str, Any]]
) -> None:
    """Random contributions (about half positive, some ties at 0) over every dataset row, with
    rows set on the medians and on records=unk (a category the model has no column for)."""
    coder, matrix_coder = stored_coder
    rows = [dict(r) for r in records]
    for i, field in enumerate(NUMERIC_FIELDS):
        rows[i][field] = coder.medians[field]
    rows[20]["records"] = "unk"
    features = FeatureEncoder(matrix_coder.feature_names).encode_rows(rows)
    rng = np.random.default_rng(11)
    contributions = rng.normal(size=(len(rows), len(FIELDS))).astype(np.float32)
    contributions[rng.random(contributions.shape) < 0.1] = 0.0
    k = 5
    bulk = matrix_coder.reason_codes(contributions, features, k)
    assert len(bulk) == k and all(len(column) == len(rows) for column in bulk)
    for i, row in enumerate(rows):
        expected = [r.code for r in coder.top_reasons(contributions[i], row, n=k)]
        got = [column[i] for column in bulk]
        assert got == expected + [None] * (k - len(expected)), i
    assert bulk[0][20] is not None
    assert matrix_coder.code_ids(features)[20, FIELDS.index("records")] == CODES.index(
        "RECORDS_UNK"
    )


def test_reason_code_ids_mark_missing_ranks_with_minus_one(
    stored_coder: tuple[ReasonCoder, MatrixReasonCoder], records: list[dict[str, Any]]
) -> None:
    _, matrix_coder = stored_coder
    features = FeatureEncoder(matrix_coder.feature_names).encode_rows(records[:3])
    contributions = np.zeros((3, len(FIELDS)), dtype=np.float32)
    contributions[0, FIELDS.index("debt")] = 0.5
    contributions[0, FIELDS.index("age")] = 0.7
    contributions[2, :] = -1.0
    ids = matrix_coder.reason_code_ids(contributions, features, k=3)
    assert ids.shape == (3, 3)
    assert [CODES[i][: CODES[i].index("_")] for i in ids[0, :2]] == ["AGE", "DEBT"]
    assert ids[0, 2] == -1 and (ids[1:] == -1).all()
    assert len(matrix_coder.reason_codes(contributions, features, k=20)) == len(FIELDS)
