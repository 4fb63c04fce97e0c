"""The job's column reader is the one every way in shares (features.columns): re-exported here
for the job's modules that name it so."""

from features.columns import (
    InputSchemaError,
    category_codes,
    check_input_schema,
    from_arrow,
    is_number,
    is_text,
    numeric_values,
    raw_cells,
    shown_cells,
)

__all__ = [
    "InputSchemaError",
    "category_codes",
    "check_input_schema",
    "from_arrow",
    "is_number",
    "is_text",
    "numeric_values",
    "raw_cells",
    "shown_cells",
]
