"""The HTTP payloads: what a client may send and what it gets back.

Strictness, chosen deliberately: numbers must be JSON numbers (a string such as "30" is refused,
so a form that forgot to convert gets told instead of being silently coerced), booleans are not
numbers, NaN and Infinity are refused, unknown fields are refused (a misspelt "incme" would
otherwise score the applicant with income 0), categories are the course's lower-case names.
"""

from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, RootModel

from features.schema import CATEGORICAL_FIELDS, NUMERIC_BOUNDS, categories


def _category_enum(field: str) -> type[StrEnum]:
    return StrEnum(field.capitalize(), {name: name for name in categories(field)})  # type: ignore[return-value]


Home = _category_enum("home")
Marital = _category_enum("marital")
Records = _category_enum("records")
Job = _category_enum("job")

# Bulk columns use plain-string literals: the same allowed names, but validated in Rust into
# str (an Enum member per value would cost a Python-level hash per cell when encoding).
HomeName = Literal["rent", "owner", "private", "ignore", "parents", "other", "unk"]
MaritalName = Literal["single", "married", "widow", "separated", "divorced", "unk"]
RecordsName = Literal["no", "yes", "unk"]
JobName = Literal["fixed", "partime", "freelance", "others", "unk"]
for _enum, _literal in (
    (Home, HomeName),
    (Marital, MaritalName),
    (Records, RecordsName),
    (Job, JobName),
):
    assert {m.value for m in _enum} == set(get_args(_literal)), _enum


def _number(low: float, high: float, description: str) -> Any:
    return Field(strict=True, allow_inf_nan=False, ge=low, le=high, description=description)



APPLICANT_EXAMPLE: dict[str, Any] = {
    "seniority": 3,
    "home": "owner",
    "time": 36,
    "age": 26,
    "marital": "single",
    "records": "no",
    "job": "freelance",
    "expenses": 35,
    "income": 0.0,
    "assets": 60000.0,
    "debt": 3000.0,
    "amount": 800,
    "price": 1000,
}


def _bounded(name: str) -> Any:
    low, high, description = NUMERIC_BOUNDS[name]
    return _number(low, high, description)


class Applicant(BaseModel):
    """One credit applicant, as the lender's web form posts it."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"example": APPLICANT_EXAMPLE}
    )

    seniority: Annotated[float, _bounded("seniority")]
    home: Home  # type: ignore[valid-type]
    time: Annotated[float, _bounded("time")]
    age: Annotated[float, _bounded("age")]
    marital: Marital  # type: ignore[valid-type]
    records: Records  # type: ignore[valid-type]
    job: Job  # type: ignore[valid-type]
    expenses: Annotated[float, _bounded("expenses")]
    income: Annotated[float, _bounded("income")]
    assets: Annotated[float, _bounded("assets")]
    debt: Annotated[float, _bounded("debt")]
    amount: Annotated[float, _bounded("amount")]
    price: Annotated[float, _bounded("price")]


DecisionStatus = Literal["APPROVED", "MAYBE", "DECLINED"]


class Decision(BaseModel):
    status: DecisionStatus = Field(
        description="DECLINED above 0.5, MAYBE above 0.3 (configurable)."
    )
    probability: float = Field(description="Probability of default.")
    model: str = Field(description="Tag of the model that scored it.")


class ApplicantBatch(RootModel[list[Applicant]]):
    """A bare JSON array of applicants; the answer is an array of decisions in the same order."""

    root: Annotated[list[Applicant], Field(min_length=1)]


class DecisionBatch(RootModel[list[Decision]]):
    root: list[Decision]


def _column(name: str) -> Any:
    description = NUMERIC_BOUNDS[name][2]
    return Field(min_length=1, description=f"{description} One value per applicant.")


class ApplicantColumns(BaseModel):
    """Column-wise bulk input: one equally long array per field (row i is applicant i)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {k: [v, v] for k, v in APPLICANT_EXAMPLE.items()}},
    )

    seniority: Annotated[list[Annotated[float, _bounded("seniority")]], _column("seniority")]
    home: list[HomeName]
    time: Annotated[list[Annotated[float, _bounded("time")]], _column("time")]
    age: Annotated[list[Annotated[float, _bounded("age")]], _column("age")]
    marital: list[MaritalName]
    records: list[RecordsName]
    job: list[JobName]
    expenses: Annotated[list[Annotated[float, _bounded("expenses")]], _column("expenses")]
    income: Annotated[list[Annotated[float, _bounded("income")]], _column("income")]
    assets: Annotated[list[Annotated[float, _bounded("assets")]], _column("assets")]
    debt: Annotated[list[Annotated[float, _bounded("debt")]], _column("debt")]
    amount: Annotated[list[Annotated[float, _bounded("amount")]], _column("amount")]
    price: Annotated[list[Annotated[float, _bounded("price")]], _column("price")]


class BulkDecisions(BaseModel):
    """Column-wise bulk answer, row i for applicant i."""

    model: str
    probability: list[float]
    status: list[DecisionStatus]


class ServiceInfo(BaseModel):
    model: str
    native_model: str
    engine: str
    bulk_engine: str
    provider: str
    batching: str
    workers: int
    model_threads: int
    n_features: int
    test_auc: float
    parity_max_abs_diff: float
    thresholds: dict[str, float]
    limits: dict[str, int]


class ErrorDetail(BaseModel):
    location: str = Field(description='Where, e.g. "age", "[3].home" or "income[1200]".')
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="A one-line summary naming the first bad field.")
    details: list[ErrorDetail] = Field(default_factory=list)


assert set(CATEGORICAL_FIELDS) == {"home", "marital", "records", "job"}
