"""The 13 raw applicant fields of the course form, and the codes the CreditScoring CSV uses.

Everything that knows the names of fields or categories reads them from here, so the training
pipeline, the encoder and the HTTP schema can never disagree.
"""

from typing import Final

NUMERIC_FIELDS: Final[tuple[str, ...]] = (
    "seniority",
    "time",
    "age",
    "expenses",
    "income",
    "assets",
    "debt",
    "amount",
    "price",
)

MONEY_MAX: Final[float] = 1e9
# Numeric ranges (low, high, description), both ends allowed. Every row of the CreditScoring data
# validates; the bounds refuse only the impossible (negative money, a minor, a 100-year job) so a
# real applicant is never turned away.
NUMERIC_BOUNDS: Final[dict[str, tuple[float, float, str]]] = {
    "seniority": (0, 80, "Years with the current employer."),
    "time": (0, 600, "Requested loan term, months."),
    "age": (18, 120, "Applicant age, years."),
    "expenses": (0, MONEY_MAX, "Monthly expenses."),
    "income": (0, MONEY_MAX, "Monthly income (0 if unknown)."),
    "assets": (0, MONEY_MAX, "Assets (0 if unknown)."),
    "debt": (0, MONEY_MAX, "Debt (0 if unknown)."),
    "amount": (0, MONEY_MAX, "Requested amount."),
    "price": (0, MONEY_MAX, "Price of the purchased good."),
}
assert set(NUMERIC_BOUNDS) == set(NUMERIC_FIELDS)

# Category names per coded column, exactly as the course (ML Zoomcamp module 6) maps them.
CATEGORY_CODES: Final[dict[str, dict[int, str]]] = {
    "home": {1: "rent", 2: "owner", 3: "private", 4: "ignore", 5: "parents", 6: "other", 0: "unk"},
    "marital": {1: "single", 2: "married", 3: "widow", 4: "separated", 5: "divorced", 0: "unk"},
    "records": {1: "no", 2: "yes", 0: "unk"},
    "job": {1: "fixed", 2: "partime", 3: "freelance", 4: "others", 0: "unk"},
}

CATEGORICAL_FIELDS: Final[tuple[str, ...]] = tuple(CATEGORY_CODES)

# The order of the course form; used for column-wise payloads and CSV headers.
FIELDS: Final[tuple[str, ...]] = (
    "seniority",
    "home",
    "time",
    "age",
    "marital",
    "records",
    "job",
    "expenses",
    "income",
    "assets",
    "debt",
    "amount",
    "price",
)

STATUS_CODES: Final[dict[int, str]] = {1: "ok", 2: "default", 0: "unk"}

# The CSV marks a missing income/assets/debt with this value.
MISSING_MONEY_VALUE: Final[int] = 99_999_999
MONEY_FIELDS_WITH_MISSING: Final[tuple[str, ...]] = ("income", "assets", "debt")


def categories(field: str) -> tuple[str, ...]:
    """The allowed category names of a categorical field, in code order."""
    return tuple(CATEGORY_CODES[field][code] for code in sorted(CATEGORY_CODES[field]))
