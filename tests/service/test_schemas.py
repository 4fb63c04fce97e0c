"""The Applicant schema accepts every real row and refuses what no form should send."""

import pytest
from pydantic import ValidationError

from export.dataset import applicant_records, load_applicants
from service.schemas import APPLICANT_EXAMPLE, Applicant, ApplicantBatch


def test_every_dataset_row_validates() -> None:
    records = applicant_records(load_applicants())
    assert len(ApplicantBatch.model_validate(records).root) == len(records) == 4454


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", 17),
        ("age", float("nan")),
        ("income", float("inf")),
        ("debt", -0.01),
        ("amount", "800"),
        ("seniority", True),
        ("home", "Owner"),
        ("job", None),
    ],
)
def test_refused_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        Applicant.model_validate({**APPLICANT_EXAMPLE, field: value})
    assert error.value.errors()[0]["loc"] == (field,)


def test_integers_are_accepted_for_numbers() -> None:
    assert (
        Applicant.model_validate_json(
            b'{"seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no", "job": "freelance", "expenses": 35, "income": 0, "assets": 60000, "debt": 3000, "amount": 800, "price": 1000}'
        ).age
        == 26.0
    )
