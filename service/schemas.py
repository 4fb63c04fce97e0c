"""The HTTP payloads: what a client may send and what it gets back.

Strictness, chosen deliberately: numbers must be JSON numbers (a string such as "30" is refused,
so a form that forgot to convert gets told instead of being silently coerced), booleans are not
numbers, NaN and Infinity are refused, unknown fields are refused (a misspelt "incme" would
otherwise score the applicant with income 0), categories are the course's lower-case names.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from features.schema import NUMERIC_BOUNDS, categories

# Categories as plain-string literals built from features/schema.py (the one source of the
# names): validated in Rust into str, so encoding never hashes an Enum member per value.
Home: Any = Literal[categories("home")]
Marital: Any = Literal[categories("marital")]
Records: Any = Literal[categories("records")]
Job: Any = Literal[categories("job")]


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
    home: Home
    time: Annotated[float, _bounded("time")]
    age: Annotated[float, _bounded("age")]
    marital: Marital
    records: Records
    job: Job
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


def _column(name: str) -> Any:
    description = NUMERIC_BOUNDS[name][2]
    return Field(min_length=1, description=f"{description} One value per applicant.")


class ApplicantColumns(BaseModel):
    """Column-wise bulk input: one array per field, all of the same length (row i is applicant
    i): arrays of different lengths are refused with 422 naming the short field (JSON Schema
    cannot state that rule)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {k: [v, v] for k, v in APPLICANT_EXAMPLE.items()}},
    )

    seniority: Annotated[list[Annotated[float, _bounded("seniority")]], _column("seniority")]
    home: list[Home]
    time: Annotated[list[Annotated[float, _bounded("time")]], _column("time")]
    age: Annotated[list[Annotated[float, _bounded("age")]], _column("age")]
    marital: list[Marital]
    records: list[Records]
    job: list[Job]
    expenses: Annotated[list[Annotated[float, _bounded("expenses")]], _column("expenses")]
    income: Annotated[list[Annotated[float, _bounded("income")]], _column("income")]
    assets: Annotated[list[Annotated[float, _bounded("assets")]], _column("assets")]
    debt: Annotated[list[Annotated[float, _bounded("debt")]], _column("debt")]
    amount: Annotated[list[Annotated[float, _bounded("amount")]], _column("amount")]
    price: Annotated[list[Annotated[float, _bounded("price")]], _column("price")]


class BulkDecisions(BaseModel):
    """Column-wise bulk answer, row i for applicant i; with `reasons=N`, also `reason_1` ...
    `reason_N`: each row's rank-k reason code, null for APPROVED rows or rows with fewer
    reasons."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, list[str | None]] = Field(init=False)

    model: str
    # With per_row=true an invalid row has a null probability, status INVALID, and its
    # `error` (an extra column, null for scored rows).
    probability: list[float | None]
    status: list[DecisionStatus | Literal["INVALID"]]


class FieldContributions(BaseModel):
    """Each form field's contribution to the log-odds of default (a category's one-hot columns
    summed into its field)."""

    seniority: float
    home: float
    time: float
    age: float
    marital: float
    records: float
    job: float
    expenses: float
    income: float
    assets: float
    debt: float
    amount: float
    price: float


class Reason(BaseModel):
    field: str = Field(description="The form field.")
    value: float | str = Field(description="The applicant's value of that field.")
    contribution: float = Field(description="Its push toward default, in log-odds (> 0).")
    code: str = Field(description='A stable code, e.g. "DEBT_HIGH", "RECORDS_YES".')
    text: str = Field(description="A plain-language reason a loan officer can send.")


class Explanation(Decision):
    """A decision with its reasons: bias + sum(contributions) = logit(probability)."""

    bias: float = Field(description="The model's base log-odds (before any field).")
    contributions: FieldContributions
    reasons: list[Reason] = Field(
        description="For MAYBE and DECLINED: the fields that push toward default, largest "
        "first (at most CREDIT_RISK_REASONS, 4 by default); empty for APPROVED."
    )


class Decisions(RootModel[list[Decision]]):
    """The answer to a batch: one decision per applicant, in the order sent."""


class Explanations(RootModel[list[Explanation]]):
    """The answer to an explanation batch: one explanation per applicant, in the order sent."""


class ServiceInfo(RootModel[dict[str, Any]]):
    """The served model (tag, native twin, AUC, parity), its engines, batching and limits."""


class ErrorDetail(BaseModel):
    location: str = Field(description='Where: "age", "[3].home", "income[1200]", "body".')
    message: str


class Error(BaseModel):
    """Every refusal of every route, whatever refused it (front door, API keys, BentoML)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "error": "age: Input should be greater than or equal to 18",
                "details": [
                    {"location": "age", "message": "Input should be greater than or equal to 18"}
                ],
                "request_id": "3f2c1d0e9b8a4c7d",
            }
        }
    )

    error: str = Field(description="One line naming the first problem.")
    details: list[ErrorDetail] = Field(description="Every problem found (at most 20).")
    request_id: str = Field(description="The request's id, also in the X-Request-ID header.")


# -- Open Inference Protocol (KServe V2) answers; requests are service/v2.py's models ----------


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    name: str | None = None  # present on a model's readiness
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    """One input per form field (numbers FP64, categories BYTES), `probability` and `status`
    out, each of shape [-1]."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2TensorOutput(BaseModel):
    """With `"per_row": true`, an invalid row has a null probability, status INVALID and its
    error in a third output, `error` (empty for scored rows)."""

    name: Literal["probability", "status", "error"]
    datatype: Literal["FP32", "BYTES"]
    shape: list[int]
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_size` when the tensor follows as binary data."
    )
    data: list[float | str | None] | None = Field(
        default=None, description="Absent when the tensor is sent as binary data."
    )


class V2InferenceResponse(BaseModel):
    """`probability` (FP32) and `status` (BYTES), one per row; `parameters.model` is the tag."""

    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any]
    outputs: list[V2TensorOutput]
