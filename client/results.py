"""Decisions joined to the rows they answer: the input's own non-field columns (an application
id...), then probability, status and model, row i of the result for row i of the input.

With per-row verdicts the rows split in two: the scored ones, as above, and the rejects, every
input column of an invalid row (the form fields too, as sent) then `error`, as the Spark job
writes its rejects."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from client.wire import BulkAnswer
from features.schema import FIELDS
from features.validation import InvalidRows

STATUS_TYPE = pa.dictionary(pa.int8(), pa.string())
MODEL_TYPE = pa.dictionary(pa.int8(), pa.string())


def carried_columns(schema: pa.Schema) -> list[str]:
    """The input columns that come back with the decisions: every one but the form fields."""
    return [name for name in schema.names if name not in FIELDS]


def scored(table: pa.Table, answer: BulkAnswer) -> pa.Table:
    """`table`'s carried columns beside its answer. The model tag is a column (a dictionary,
    so it costs a byte a row) because a long job can span a model rollout, and a canary
    splits rows between two models: each row names the model that decided it."""
    columns = {name: table.column(name) for name in carried_columns(table.schema)}
    if answer.row_model is not None:
        model = pc.cast(pc.dictionary_encode(answer.row_model), MODEL_TYPE)
    else:
        model = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(answer.rows, dtype=np.int8)), pa.array([answer.model])
        )
    columns.update(probability=answer.probability, status=answer.status, model=model)
    return pa.table(columns)


def split(
    table: pa.Table, answer: BulkAnswer, local: InvalidRows | None = None
) -> tuple[pa.Table, pa.Table]:
    """Per-row verdicts: (the scored rows beside their answers, the rejected rows with their
    `error`), each in input order. `local`: verdicts worked out here on numbers read as text,
    whose words quote the text as written (client.text_numbers)."""
    assert answer.error is not None
    error = pc.cast(answer.error, pa.string())
    if local is not None and len(local):
        errors = np.array(error.to_pylist(), dtype=object)
        errors[local.rows] = local.errors
        error = pa.array(errors, pa.string())
    rejected = pc.is_valid(error)
    if not pc.any(rejected).as_py():
        return scored(table, answer), rejects_schema(table.schema).empty_table()
    keep = pc.invert(rejected)
    deciders = answer.row_model.filter(keep) if answer.row_model is not None else None
    kept = BulkAnswer(
        answer.probability.filter(keep),
        answer.status.filter(keep),
        answer.model,
        row_model=deciders,
    )
    rejects = table.filter(rejected).append_column("error", error.filter(rejected))
    return scored(table.filter(keep), kept), rejects


def rejects_schema(schema: pa.Schema) -> pa.Schema:
    """Every input column, then `error`."""
    return schema.append(pa.field("error", pa.string()))


def empty_result(schema: pa.Schema) -> pa.Table:
    """The result of an input with no rows: the same columns, none of them sent."""
    carried = [schema.field(name) for name in carried_columns(schema)]
    result = pa.schema(
        [*carried, ("probability", pa.float32()), ("status", STATUS_TYPE), ("model", MODEL_TYPE)]
    )
    return result.empty_table()


def as_frame(result: pa.Table, index: pd.Index | None = None) -> pd.DataFrame:
    """A scored table as pandas (status and model as categoricals), optionally on the index
    of the DataFrame it answers, so that `frame.join(as_frame(...))` lines up row for row."""
    frame = result.to_pandas()
    if index is not None:
        frame.index = index
    return frame
