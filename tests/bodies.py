"""Request bodies the tests build from applicants (dicts of the 13 form fields)."""

from collections.abc import Mapping, Sequence
from typing import Any

from features.schema import FIELDS, NUMERIC_FIELDS


def applicant_columns(applicants: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The applicants column-wise (a bulk JSON body): one list per form field."""
    return {name: [applicant[name] for applicant in applicants] for name in FIELDS}


def v2_inputs(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """V2 JSON input tensors of applicants given column-wise: one per form field, FP64 numbers
    and BYTES categories, in the form's order."""
    return [
        {
            "name": name,
            "shape": [len(columns[name])],
            "datatype": "FP64" if name in NUMERIC_FIELDS else "BYTES",
            "data": list(columns[name]),
        }
        for name in FIELDS
    ]
