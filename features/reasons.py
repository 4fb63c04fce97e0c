"""Reason codes: the fields that pushed a decision toward default, as stable codes and texts.

The reason table (`REASON_TEXTS`) is the one place where codes and texts live. A numeric field
has two entries, by direction: "high" when the applicant's value is above the training median,
"low" otherwise (a value equal to the median reads as low: the common case is debt = 0, which is
also the median, "little or no debt"). A categorical field has one entry per category; a value
outside the schema gets the field's fallback. A code is FIELD_KEY in upper case ("DEBT_HIGH",
"RECORDS_YES", "JOB_PARTIME"; the fallback is FIELD_UNLISTED). Texts are written so a loan
officer can send them as they are.

Reasons are the fields with a positive contribution (toward default), largest first. Who gets
reasons (for example MAYBE and DECLINED only) is the caller's rule.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS, categories

HIGH: Final = "high"
LOW: Final = "low"
UNLISTED: Final = "unlisted"

REASON_TEXTS: Final[dict[str, dict[str, str]]] = {
    "seniority": {
        LOW: "Short time with the current employer",
        HIGH: "Long time with the current employer",
    },
    "home": {
        "rent": "Rents their home",
        "owner": "Owns their home",
        "private": "Lives in private housing",
        "ignore": "Housing situation not given",
        "parents": "Lives with parents",
        "other": "Other housing situation",
        "unk": "Housing situation unknown",
        UNLISTED: "Housing situation not recognised",
    },
    "time": {
        LOW: "Short repayment term requested",
        HIGH: "Long repayment term requested",
    },
    "age": {
        LOW: "Age below that of a typical applicant",
        HIGH: "Age above that of a typical applicant",
    },
    "marital": {
        "single": "Marital status: single",
        "married": "Marital status: married",
        "widow": "Marital status: widowed",
        "separated": "Marital status: separated",
        "divorced": "Marital status: divorced",
        "unk": "Marital status unknown",
        UNLISTED: "Marital status not recognised",
    },
    "records": {
        "no": "No previous credit record on file",
        "yes": "Previous record of arrears on file",
        "unk": "Credit record unknown",
        UNLISTED: "Credit record not recognised",
    },
    "job": {
        "fixed": "Fixed employment",
        "partime": "Part-time employment",
        "freelance": "Freelance or self-employed income",
        "others": "Other type of employment",
        "unk": "Type of employment unknown",
        UNLISTED: "Type of employment not recognised",
    },
    "expenses": {
        LOW: "Monthly expenses are low",
        HIGH: "Monthly expenses are high compared with typical applicants",
    },
    "income": {
        LOW: "Income is low compared with typical applicants",
        HIGH: "Income is high",
    },
    "assets": {
        LOW: "Few assets compared with typical applicants",
        HIGH: "Assets are high",
    },
    "debt": {
        LOW: "Little or no debt on record",
        HIGH: "Debt is high compared with typical applicants",
    },
    "amount": {
        LOW: "Requested amount is low",
        HIGH: "Requested amount is high compared with typical applicants",
    },
    "price": {
        LOW: "Price of the purchase is low",
        HIGH: "Price of the purchase is high compared with typical applicants",
    },
}
assert tuple(REASON_TEXTS) == FIELDS
assert all(set(REASON_TEXTS[f]) == {LOW, HIGH} for f in NUMERIC_FIELDS)
assert all(set(REASON_TEXTS[f]) == {*categories(f), UNLISTED} for f in CATEGORICAL_FIELDS)


def reason_code(field: str, key: str) -> str:
    return f"{field}_{key}".upper()


# Every code, in table order; `ReasonCoder.code_ids` index into it.
CODES: Final[tuple[str, ...]] = tuple(
    reason_code(field, key) for field, texts in REASON_TEXTS.items() for key in texts
)
_CODES_THEN_NONE = np.array([*CODES, None], dtype=object)  # id -1 picks the trailing None
TEXTS: Final[dict[str, str]] = {
    reason_code(field, key): text
    for field, texts in REASON_TEXTS.items()
    for key, text in texts.items()
}


@dataclass(frozen=True, slots=True)
class Reason:
    field: str
    value: Any  # the applicant's raw value
    contribution: float  # log-odds toward default, > 0
    code: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        # Written out: dataclasses.asdict deep-copies every value (a third of /explain's work).
        return {
            "field": self.field,
            "value": self.value,
            "contribution": self.contribution,
            "code": self.code,
            "text": self.text,
        }


class ReasonCoder:
    """Reasons for explained rows, given each numeric field's training median.

    Directions compare float32 values (what the model sees) with the float32 median, so the
    row-wise and the vectorised paths agree on every value.
    """

    def __init__(self, medians: Mapping[str, float]) -> None:
        missing = [field for field in NUMERIC_FIELDS if field not in medians]
        if missing:
            raise ValueError(f"no training median for {missing}")
        self.medians = {field: np.float32(medians[field]) for field in NUMERIC_FIELDS}

    def key_of(self, field: str, value: Any) -> str:
        """The table key for a raw value: high/low for numbers, the category (or fallback)."""
        if field in self.medians:
            return HIGH if np.float32(value) > self.medians[field] else LOW
        return value if value in REASON_TEXTS[field] and value != UNLISTED else UNLISTED

    def top_reasons(
        self, contributions: npt.NDArray[np.floating[Any]], values: Mapping[str, Any], n: int = 4
    ) -> list[Reason]:
        """Up to n fields with positive contributions (FIELDS order), largest first; `values`
        maps each form field to the applicant's raw value."""
        # Python floats: for 13 values a sort of a list beats NumPy's per-call cost; stable, as
        # the vectorised path's ranking is (ties keep FIELDS order).
        values_of = np.asarray(contributions, dtype=np.float64).tolist()
        order = sorted(range(len(values_of)), key=values_of.__getitem__, reverse=True)
        reasons: list[Reason] = []
        for i in order[:n]:
            contribution = values_of[i]
            if not contribution > 0:
                break
            field = FIELDS[i]
            code = reason_code(field, self.key_of(field, values[field]))
            reasons.append(Reason(field, values[field], contribution, code, TEXTS[code]))
        return reasons

    def matrix_coder(self, feature_names: tuple[str, ...]) -> "MatrixReasonCoder":
        return MatrixReasonCoder(self, feature_names)


class MatrixReasonCoder:
    """Vectorised reason codes straight from the encoded float32 feature matrix (bulk scoring):
    numbers are read from their columns, categories from their one-hot columns (all zero: the
    fallback), one matrix product for all categorical fields."""

    def __init__(self, coder: ReasonCoder, feature_names: tuple[str, ...]) -> None:
        self.feature_names = feature_names
        position = {name: i for i, name in enumerate(feature_names)}
        code_index = {code: i for i, code in enumerate(CODES)}
        self.numeric_columns = np.array([position[f] for f in NUMERIC_FIELDS], dtype=np.intp)
        self.numeric_medians = np.array(
            [coder.medians[f] for f in NUMERIC_FIELDS], dtype=np.float32
        )
        self.numeric_low_ids = np.array(
            [code_index[reason_code(f, LOW)] for f in NUMERIC_FIELDS], dtype=np.intp
        )
        self.numeric_high_ids = np.array(
            [code_index[reason_code(f, HIGH)] for f in NUMERIC_FIELDS], dtype=np.intp
        )
        # selector[column, j] = 1 + the category's slot for categorical field j; slot_ids maps
        # (field j, 0 = no column set / 1 + slot) to a code id; a slot no one-hot row produces
        # (two columns of a group set) reads as the fallback.
        self.selector = np.zeros((len(feature_names), len(CATEGORICAL_FIELDS)), dtype=np.float32)
        width = 1 + max(len(categories(f)) for f in CATEGORICAL_FIELDS)
        self.slot_ids = np.zeros((len(CATEGORICAL_FIELDS), width), dtype=np.intp)
        for j, field in enumerate(CATEGORICAL_FIELDS):
            self.slot_ids[j, :] = code_index[reason_code(field, UNLISTED)]
            without_column = []
            for slot, value in enumerate(categories(field)):
                self.slot_ids[j, 1 + slot] = code_index[reason_code(field, value)]
                column = position.get(f"{field}={value}")
                if column is None:
                    without_column.append(value)
                else:
                    self.selector[column, j] = 1 + slot
            # No column set: the one schema category the model has no column for (records=unk
            # here: no training row had it), else the fallback.
            unset = without_column[0] if len(without_column) == 1 else UNLISTED
            self.slot_ids[j, 0] = code_index[reason_code(field, unset)]
        self.numeric_targets = np.array([FIELDS.index(f) for f in NUMERIC_FIELDS])
        self.categorical_targets = np.array([FIELDS.index(f) for f in CATEGORICAL_FIELDS])

    def code_ids(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
        """(rows, len(FIELDS)) index into CODES of each field's reason code, for every row."""
        ids = np.empty((len(features), len(FIELDS)), dtype=np.intp)
        high = features[:, self.numeric_columns] > self.numeric_medians
        ids[:, self.numeric_targets] = np.where(high, self.numeric_high_ids, self.numeric_low_ids)
        slots = (features @ self.selector).astype(np.intp)
        np.clip(slots, 0, self.slot_ids.shape[1] - 1, out=slots)  # guards a non one-hot row
        ids[:, self.categorical_targets] = self.slot_ids[np.arange(len(CATEGORICAL_FIELDS)), slots]
        return ids

    def reason_code_ids(
        self, contributions: npt.NDArray[np.float32], features: npt.NDArray[np.float32], k: int
    ) -> npt.NDArray[np.intp]:
        """(rows, k) index into CODES of each row's rank-1..k reason, -1 where the row has
        fewer than k fields with a positive contribution (ties keep FIELDS order)."""
        k = min(k, len(FIELDS))
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(contributions, order, axis=1)
        ids = np.take_along_axis(self.code_ids(features), order, axis=1)
        ids[~(top > 0)] = -1
        return ids

    def reason_codes(
        self, contributions: npt.NDArray[np.float32], features: npt.NDArray[np.float32], k: int
    ) -> list[npt.NDArray[np.object_]]:
        """k object arrays (rank 1..k) of codes, None where a row has fewer reasons."""
        ids = self.reason_code_ids(contributions, features, k)
        return [_CODES_THEN_NONE[ids[:, rank]] for rank in range(ids.shape[1])]
