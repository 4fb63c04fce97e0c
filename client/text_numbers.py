"""Numbers read as text (a CSV file's, with per-row verdicts) made ready to send. Only a CSV's:
a typed input whose numeric column holds text (a DataFrame of strings) is sent as it is and
refused, as a JSON "30" is, and as the Spark job refuses such a Parquet column.

The server takes numbers as number columns, so the text is parsed here by the reader the server
and the Spark job use (features.columns) and sent as float64 (NaN where the text is no number).
The verdicts of such rows are worked out here by the same checks (features.validation) on the
text as written, so a rejected row quotes its cell as the file has it (`got 'forty'`), exactly
as the Spark job's rejects of the same file do.
"""

import pyarrow as pa

from features.columns import from_arrow
from features.schema import FIELDS, NUMERIC_FIELDS
from features.validation import InvalidRows, find_invalid_rows


def parsed_numbers(table: pa.Table) -> tuple[pa.Table, InvalidRows]:
    """`table`'s form fields with the numeric ones as float64, and the verdicts of its rows."""
    fields = table.select(list(FIELDS))
    read = from_arrow(fields, text_numbers=True)
    for name in NUMERIC_FIELDS:
        index = fields.schema.get_field_index(name)
        fields = fields.set_column(index, name, pa.array(read.numeric[name], pa.float64()))
    return fields, find_invalid_rows(read)
