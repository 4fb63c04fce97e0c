"""The decision record: its columns, their Arrow types and the PostgreSQL table.

One row per scored applicant. `request_id`, `route`, `client`, `model` and `decided_at` are the
same for every row of a request; `row_index` is the applicant's position in it (0 for a single
applicant), so (request_id, row_index) names one decision. Reason columns are null for APPROVED
rows and where a row has fewer fields pushing toward default; challenger columns are null
until a challenger model scores beside the served one.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from features.encoder import CategoryCodes
from features.schema import CATEGORICAL_FIELDS, FIELDS

TABLE: Final = "credit_risk_decisions"
REASONS: Final = 4  # reason_1 ... reason_4
REASON_COLUMNS: Final[tuple[str, ...]] = tuple(f"reason_{k}" for k in range(1, REASONS + 1))
TIMESTAMP: Final = pa.timestamp("us", tz="UTC")

_FIELD_TYPES = [(f, pa.string() if f in CATEGORICAL_FIELDS else pa.float64()) for f in FIELDS]
SCHEMA: Final = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row_index", pa.int32(), nullable=False),
        pa.field("decided_at", TIMESTAMP, nullable=False),
        pa.field("route", pa.string(), nullable=False),
        pa.field("client", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("probability", pa.float32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        *(pa.field(name, kind) for name, kind in _FIELD_TYPES),
        *(pa.field(name, pa.string()) for name in REASON_COLUMNS),
        pa.field("challenger_model", pa.string()),
        pa.field("challenger_probability", pa.float32()),
        pa.field("challenger_status", pa.string()),
    ]
)
COLUMNS: Final[tuple[str, ...]] = tuple(SCHEMA.names)

_PG_TYPES = {
    pa.string(): "text",
    pa.int32(): "integer",
    TIMESTAMP: "timestamptz",
    pa.float32(): "real",  # float4: a float32 probability round-trips exactly
    pa.float64(): "double precision",
}


def postgres_ddl() -> list[str]:
    """Statements creating the table and its lookup indexes when missing."""
    columns = ",\n  ".join(
        f"{field.name} {_PG_TYPES[field.type]}{'' if field.nullable else ' NOT NULL'}"
        for field in SCHEMA
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {columns}\n)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_request_id ON {TABLE} (request_id)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_decided_at ON {TABLE} (decided_at)",
    ]


@dataclass(frozen=True, slots=True)
class Challenger:
    """What a challenger model decided for the same rows (columns null when absent)."""

    model: str
    probability: npt.NDArray[np.float32]
    status: Sequence[str]


# The 13 form fields' raw values: one sequence per field (column-wise, what bulk requests
# have), or one mapping per applicant (what a single applicant or a JSON batch already is).
# A categorical column may also come as features.encoder.CategoryCodes (bulk bodies).
FieldValues = (
    Mapping[str, Sequence[Any] | npt.NDArray[Any] | CategoryCodes] | Sequence[Mapping[str, Any]]
)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~3x more to build, per request
class DecisionBatch:
    """The decisions of one request: row i of every array is applicant i.

    `fields` holds the 13 form fields' raw values (see FieldValues); `features` is the encoded
    float32 matrix the model scored (the writer explains MAYBE and DECLINED rows from it).
    Built on the request path and never changed after `record()`.
    """

    request_id: str
    route: str
    client: str
    model: str
    decided_at: float  # seconds since the epoch, UTC
    probability: npt.NDArray[np.float32]
    status: Sequence[str] | npt.NDArray[np.object_]
    fields: FieldValues
    features: npt.NDArray[np.float32]
    challenger: Challenger | None = None
    # Each row's position in its request (row_index), where the rows are not the request's
    # 0, 1, 2, ...: a canary's group, or the valid rows of a bulk input with invalid ones.
    positions: npt.NDArray[np.intp] | None = None

    def __len__(self) -> int:
        return len(self.probability)
