"""The client's pieces that need no server: row shifting in error messages, the retry policy,
Retry-After parsing, chunking of every input kind, CSV cells that are not numbers."""

import email.utils
import subprocess
import sys
import time

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from client.errors import (
    InputError,
    OverloadedError,
    RequestRejectedError,
    ServerError,
    UnreachableError,
    shift_rows,
)
from client.inputs import open_input
from client.retry import Attempts, RetryPolicy, retry_after_s
from client.wire import read_answer, request_body
from features.schema import FIELDS
from harness.process import PROJECT_ROOT


def test_shift_rows_moves_bulk_cells_and_batch_items() -> None:
    text = "income[1200]: Input should be a number (and age[3], [7].home, price[0])"
    assert shift_rows(text, 100_000) == (
        "income[101200]: Input should be a number (and age[100003], [100007].home, price[100000])"
    )
    assert shift_rows("header: age: Field required", 5) == "header: age: Field required"
    assert shift_rows("unknown[3]: x", 5) == "unknown[3]: x"  # not a field: left alone


def _answer(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_s(_answer(503, **{"retry-after": "2"})) == 2
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_s(_answer(503, **{"retry-after": later})) or 0) <= 30
    assert retry_after_s(_answer(503)) is None
    assert retry_after_s(_answer(503, **{"retry-after": "soon"})) is None


def test_attempts_wait_as_asked_capped_then_give_up() -> None:
    attempts = Attempts(RetryPolicy(max_refusals=2, max_wait_s=5), "test")
    assert attempts.after_answer(_answer(200)) is None
    assert 1.0 <= (attempts.after_answer(_answer(503, **{"retry-after": "1"})) or 0) <= 1.2
    assert attempts.after_answer(_answer(429, **{"retry-after": "3600"})) == 5  # capped
    body = b'{"error": "queue full", "details": []}'
    with pytest.raises(OverloadedError) as raised:
        attempts.after_answer(_answer(503, body, **{"retry-after": "1"}))
    assert raised.value.status == 503 and raised.value.error == "queue full"


def test_attempts_back_off_without_retry_after_and_on_transport_errors() -> None:
    attempts = Attempts(RetryPolicy(max_connection_errors=2, backoff_s=0.5), "test")
    assert 0.5 <= (attempts.after_answer(_answer(502)) or 0) <= 0.6
    assert 1.0 <= (attempts.after_answer(_answer(504)) or 0) <= 1.2
    refused = httpx.ConnectError("connection refused")
    assert 0.5 <= attempts.after_transport_error(refused) <= 0.6
    assert 1.0 <= attempts.after_transport_error(refused) <= 1.2
    with pytest.raises(UnreachableError, match="no answer after 3 tries"):
        attempts.after_transport_error(refused)


def test_client_errors_are_final_and_carry_the_server_json_with_global_rows() -> None:
    body = (
        b'{"error": "income[12]: Input should be a finite number", '
        b'"details": [{"location": "income[12]", "message": "Input should be a finite number"}]}'
    )
    attempts = Attempts(RetryPolicy(), "test", row_offset=5_000)
    with pytest.raises(RequestRejectedError) as raised:
        attempts.after_answer(_answer(422, body))
    assert raised.value.status == 422
    assert raised.value.error == "income[5012]: Input should be a finite number"
    assert raised.value.details == [
        {"location": "income[5012]", "message": "Input should be a finite number"}
    ]
    assert "income[5012]" in str(raised.value)
    with pytest.raises(ServerError, match="500: oops"):  # not JSON: the text is kept
        attempts.after_answer(_answer(500, b"oops"))


def _fields_table(rows: int, records) -> pa.Table:
    columns = {name: [records[i % len(records)][name] for i in range(rows)] for name in FIELDS}
    return pa.table({**columns, "row": list(range(rows))})


@pytest.mark.parametrize("kind", ["table", "frame", "parquet", "folder", "csv"])
def test_every_input_kind_comes_in_exact_chunks_in_order(kind, records, tmp_path) -> None:
    table = _fields_table(10_007, records)
    source: object = table
    if kind == "frame":
        source = table.to_pandas()
    elif kind == "parquet":
        source = tmp_path / "in.parquet"
        pq.write_table(table, source, row_group_size=777)
    elif kind == "folder":
        source = tmp_path / "in"
        source.mkdir()
        for part, start in enumerate(range(0, 10_007, 3_000)):
            pq.write_table(table.slice(start, 3_000), source / f"part-{part:02d}.parquet")
        (source / "_SUCCESS").write_text("")  # as Spark leaves it: not data
    elif kind == "csv":
        source = tmp_path / "in.csv"
        pcsv.write_csv(table, source)
    opened = open_input(source)
    chunks = list(opened.chunks(2_000))
    assert [c.rows for c in chunks] == [2_000] * 5 + [7]
    assert [c.offset for c in chunks] == list(range(0, 10_007, 2_000))
    rows = [value for c in chunks for value in c.table.column("row").to_pylist()]
    assert [int(value) for value in rows] == list(range(10_007))
    assert opened.rows == (None if kind == "csv" else 10_007)


def test_csv_keeps_other_columns_as_written(tmp_path, records) -> None:
    path = tmp_path / "in.csv"
    table = _fields_table(3, records).append_column("id", pa.array(["007", "010", "x"]))
    pcsv.write_csv(table, path)
    (chunk,) = open_input(path).chunks(10)
    assert chunk.table.column("id").to_pylist() == ["007", "010", "x"]
    assert chunk.table.column("row").to_pylist() == ["0", "1", "2"]  # text, as in the file


def test_csv_cell_that_is_not_a_number_is_named_by_its_row(tmp_path, records) -> None:
    """Arrow's CSV reader names only the column; the client finds the row."""
    path = tmp_path / "in.csv"
    table = _fields_table(200_000, records)
    pcsv.write_csv(table, path)
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[1 + 150_001].split(",")
    cells[FIELDS.index("debt")] = "lots"
    lines[1 + 150_001] = ",".join(cells)
    path.write_text("".join(lines))
    message = r"debt\[150001\]: must be a number from 0 to 1e\+09; got 'lots'"
    with pytest.raises(InputError, match=message):
        for _ in open_input(path).chunks(50_000):
            pass


def test_inputs_checked_before_sending(tmp_path, records) -> None:
    table = _fields_table(3, records)
    with pytest.raises(InputError, match=r"no column for field\(s\) age, price"):
        open_input(table.drop_columns(["age", "price"]))
    with pytest.raises(InputError, match="status would clash"):
        open_input(table.append_column("status", pa.array(["a", "b", "c"])))
    with pytest.raises(InputError, match="no such file"):
        open_input(tmp_path / "missing.parquet")
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(InputError, match="unknown kind of file"):
        open_input(tmp_path / "in.json")
    with pytest.raises(InputError, match="cannot score a list"):
        open_input([1, 2])  # type: ignore[arg-type]


def test_frame_index_is_carried_unless_it_is_the_default(records) -> None:
    frame = _fields_table(4, records).to_pandas()
    assert open_input(frame).schema.names[-1] == "row"
    named = frame.set_index(pd.Index(["a", "b", "c", "d"], name="application"))
    assert "application" in open_input(named).schema.names


def test_request_body_holds_only_the_fields(records) -> None:
    table = _fields_table(5, records)
    sent = pa.ipc.open_stream(request_body(table)).read_all()
    assert sent.column_names == list(FIELDS)
    assert sent.equals(table.select(list(FIELDS)))


def test_answers_are_checked(records) -> None:
    good = pa.table(
        {"probability": pa.array([0.1, 0.9], pa.float32()), "status": ["APPROVED", "DECLINED"]},
        metadata={"model": "m:1"},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, good.schema) as writer:
        writer.write_table(good)
    content = sink.getvalue().to_pybytes()
    assert read_answer(content, 2).model == "m:1"
    with pytest.raises(ServerError, match="2 rows for 3 applicants"):
        read_answer(content, 3)
    with pytest.raises(ServerError, match="not an Arrow stream"):
        read_answer(b'{"probability": []}', 2)


def test_client_never_imports_the_service() -> None:
    """Imports go one way: the client speaks HTTP and may use features/, never service/."""
    code = (
        "import sys, client, client.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('service', 'runners'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
