"""The Arrow bulk reader on its own: typed columns in, checked columns or a clear 4xx out."""

import numpy as np
import pyarrow as pa
import pytest
from sklearn.feature_extraction import DictVectorizer

from features.encoder import CategoryCodes, FeatureEncoder
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS
from features.thresholds import INVALID_LEVEL, Thresholds
from service.arrow_io import decisions_as_arrow, parse_applicant_arrow, table_as_ipc
from service.column_checks import refuse_invalid
from service.errors import RequestError

MAX_ROWS = 1_000


@pytest.fixture(scope="module")
def table(records) -> pa.Table:
    return pa.table({name: [r[name] for r in records[:200]] for name in FIELDS})


def _checked(body: bytes, file_format: bool = False, max_rows: int = MAX_ROWS) -> dict:
    """What the default (refusing) bulk path takes from an Arrow body."""
    columns = parse_applicant_arrow(body, file_format, max_rows)
    refuse_invalid(columns)
    return columns.for_encoder()


def _error(body: bytes, file_format: bool = False, max_rows: int = MAX_ROWS) -> RequestError:
    with pytest.raises(RequestError) as raised:
        _checked(body, file_format, max_rows)
    return raised.value


@pytest.mark.parametrize("file_format", [False, True], ids=["stream", "file"])
def test_columns_encode_like_the_records(table: pa.Table, records, file_format: bool) -> None:
    columns = _checked(table_as_ipc(table, file_format), file_format)
    vectorizer = DictVectorizer(sparse=False).fit(records)
    encoder = FeatureEncoder(tuple(str(n) for n in vectorizer.get_feature_names_out()))
    expected = vectorizer.transform(records[:200]).astype(np.float32)
    np.testing.assert_array_equal(encoder.encode_columns(columns), expected)
    assert all(isinstance(columns[name], CategoryCodes) for name in CATEGORICAL_FIELDS)


def test_narrow_and_dictionary_encoded_types_are_accepted(table: pa.Table) -> None:
    """What dataframe libraries write: int32/float32 numbers, dictionary-encoded categories,
    large strings, several record batches."""
    narrow = pa.table(
        {
            name: table.column(name).cast(pa.float32() if i % 2 else pa.int32())
            if name in NUMERIC_FIELDS
            else (
                table.column(name).dictionary_encode()
                if i % 2
                else table.column(name).cast(pa.large_string())
            )
            for i, name in enumerate(FIELDS)
        }
    )
    batches = narrow.to_batches(max_chunksize=64)
    assert len(batches) > 1
    body = table_as_ipc(pa.Table.from_batches(batches))
    got = _checked(body)
    want = _checked(table_as_ipc(table))
    for name in NUMERIC_FIELDS:
        np.testing.assert_array_equal(got[name], want[name])
    for name in CATEGORICAL_FIELDS:
        np.testing.assert_array_equal(got[name].codes, want[name].codes)


def _with(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        (lambda t: _with(t, "home", pa.array(["castle"] * t.num_rows)), 422, "home[0]"),
        (
            lambda t: _with(
                t, "age", pa.array([30.0] * 7 + [float("nan")] + [30.0] * (t.num_rows - 8))
            ),
            422,
            "age[7]",
        ),
        (
            lambda t: _with(t, "debt", pa.array([0] * 3 + [-5] + [0] * (t.num_rows - 4))),
            422,
            "debt[3]",
        ),
        (
            lambda t: _with(t, "income", pa.array([None] * 2 + [100.0] * (t.num_rows - 2))),
            422,
            "income[0]",
        ),
        (
            lambda t: _with(t, "job", pa.array(["fixed", None] + ["fixed"] * (t.num_rows - 2))),
            422,
            "job[1]",
        ),
        (lambda t: _with(t, "price", pa.array(["1000"] * t.num_rows)), 422, "price"),
        (lambda t: _with(t, "marital", pa.array([1] * t.num_rows)), 422, "marital"),
        (lambda t: t.drop_columns(["assets"]), 422, "assets"),
        (
            lambda t: t.append_column("favourite_colour", pa.array(["red"] * t.num_rows)),
            422,
            "favourite_colour",
        ),
        (lambda t: t.append_column("age", t.column("age")), 422, "age"),
        (lambda t: t.slice(0, 0), 422, "no rows"),
    ],
    ids=[
        "unknown category",
        "NaN",
        "negative",
        "null number",
        "null category",
        "numbers as text",
        "category as number",
        "missing column",
        "unknown column",
        "duplicate column",
        "no rows",
    ],
)
def test_bad_columns_are_named(table: pa.Table, change, status: int, named: str) -> None:
    error = _error(table_as_ipc(change(table)))
    assert error.status == status and named in error.message, error.message


def test_a_refusal_quotes_the_value_as_sent(table: pa.Table) -> None:
    ages = pa.array([30.0] * 4 + [5.0] + [30.0] * (table.num_rows - 5))
    error = _error(table_as_ipc(_with(table, "age", ages)))
    assert error.message == "age[4]: must be a number from 18 to 120; got 5"
    assert error.details == [
        {"location": "age[4]", "message": "must be a number from 18 to 120; got 5"}
    ]


def test_integers_beyond_float64s_exact_range_are_named_not_a_failure(table: pa.Table) -> None:
    prices = pa.array([1000] * 9 + [2**53 + 1] + [1000] * (table.num_rows - 10), pa.int64())
    error = _error(table_as_ipc(_with(table, "price", prices)))
    assert error.message == f"price[9]: must be a number from 0 to 1e+09; got {2**53 + 1}"


def test_every_bad_column_is_listed(table: pa.Table) -> None:
    bad = _with(
        _with(table, "home", pa.array(["castle"] * table.num_rows)),
        "age",
        pa.array([-1] * table.num_rows),
    )
    error = _error(table_as_ipc(bad))
    assert {d["location"] for d in error.details} == {"age[0]", "home[0]"}
    assert "(and 1 more)" in error.message


def test_too_many_rows_is_413(table: pa.Table) -> None:
    error = _error(table_as_ipc(table), max_rows=199)
    assert error.status == 413 and "199" in error.message


@pytest.mark.parametrize(
    ("body", "file_format"),
    [
        (b"", False),
        (b"not arrow at all", False),
        (bytes(range(256)) * 4, True),
        (b'{"age": [30]}', False),
    ],
    ids=["empty", "text", "binary noise", "json"],
)
def test_unreadable_bodies_are_400(body: bytes, file_format: bool) -> None:
    error = _error(body, file_format)
    assert error.status == 400 and "Arrow" in error.message


def test_truncated_stream_is_400(table: pa.Table) -> None:
    body = table_as_ipc(table)
    error = _error(body[: len(body) // 2])
    assert error.status == 400


def test_decisions_as_arrow_round_trip() -> None:
    probabilities = np.array([0.1, 0.35, 0.9, 0.3, 0.5], dtype=np.float32)
    levels = Thresholds(0.3, 0.5).levels(probabilities)
    table = pa.ipc.open_stream(decisions_as_arrow("m:1", probabilities, levels)).read_all()
    assert table.schema.metadata == {b"model": b"m:1"}
    np.testing.assert_array_equal(table.column("probability").to_numpy(), probabilities)
    assert table.column("status").to_pylist() == [
        "APPROVED",
        "MAYBE",
        "DECLINED",
        "APPROVED",
        "MAYBE",
    ]


def test_per_row_decisions_as_arrow_mark_invalid_rows() -> None:
    """Per-row verdicts: an invalid row has a null probability, status INVALID and its error."""
    probabilities = np.array([0.1, np.nan, 0.9], dtype=np.float32)
    invalid = np.array([False, True, False])
    levels = Thresholds(0.3, 0.5).levels(probabilities)
    levels[invalid] = INVALID_LEVEL
    errors = [None, "age: missing value", None]
    body = decisions_as_arrow("m:1", probabilities, levels, {"error": errors}, invalid=invalid)
    table = pa.ipc.open_stream(body).read_all()
    assert table.column("probability").to_pylist()[1] is None
    assert table.column("status").to_pylist() == ["APPROVED", "INVALID", "DECLINED"]
    assert table.column("error").to_pylist() == errors
