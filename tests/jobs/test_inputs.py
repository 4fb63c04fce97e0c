"""The input check before Spark starts (pyarrow only), and the spreading it decides."""

import gzip
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from jobs.columns import InputSchemaError
from jobs.inputs import MAX_FOOTERS, InputError, InputLayout, check_input
from jobs.score import MIN_SPREAD_ROWS, spread
from tests.jobs.conftest import applicant_table


@pytest.fixture(scope="module")
def table(records) -> pa.Table:
    return applicant_table(records)


def test_a_missing_path_or_an_empty_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=f"^input {re.escape(str(tmp_path))}/nowhere does not exist$"
    ):
        check_input(str(tmp_path / "nowhere"))
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "_SUCCESS").write_bytes(b"")  # hidden, as Spark treats it
    with pytest.raises(InputError, match=r"input folder .*lake has no data files"):
        check_input(str(tmp_path / "lake"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_named(table: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "locked.parquet"
    pq.write_table(table, path)
    path.chmod(0)
    with pytest.raises(InputError, match=r"locked\.parquet: permission denied"):
        check_input(str(path))


def test_a_file_that_is_not_parquet_is_named(table: pa.Table, tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    pq.write_table(table, tmp_path / "lake" / "b.parquet")
    (tmp_path / "lake" / "a.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError, match=r"a\.parquet: not a Parquet file \("):
        check_input(str(tmp_path / "lake"))


def test_a_missing_field_is_refused_for_parquet_and_csv(table: pa.Table, tmp_path: Path) -> None:
    pq.write_table(table.drop_columns(["job"]), tmp_path / "no-job.parquet")
    with pytest.raises(InputSchemaError, match="job: column missing from the input"):
        check_input(str(tmp_path / "no-job.parquet"))
    with gzip.open(tmp_path / "no-age.csv.gz", "wb") as file:
        pacsv.write_csv(table.drop_columns(["age"]), file)
    with pytest.raises(InputSchemaError, match="age: column missing from the input"):
        check_input(str(tmp_path / "no-age.csv.gz"))


def test_the_layout_counts_row_groups_and_rows(table: pa.Table, tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    pq.write_table(table, tmp_path / "lake" / "one.parquet")  # one row group
    pq.write_table(table, tmp_path / "lake" / "three.parquet", row_group_size=1_000)
    layout = check_input(str(tmp_path / "lake"))
    assert (layout.format, layout.files, layout.pieces) == ("parquet", 2, 4)
    assert layout.rows == 2 * table.num_rows and layout.checked
    with gzip.open(tmp_path / "a.csv.gz", "wb") as file:
        pacsv.write_csv(table, file)
    csv = check_input(str(tmp_path / "a.csv.gz"))
    assert (csv.format, csv.pieces, csv.rows) == ("csv", 1, None)  # a gzip file is one piece
    assert csv.schema is not None and set(csv.schema.types) == {pa.string()}


def test_a_uri_pyarrow_cannot_open_is_left_to_spark() -> None:
    layout = check_input("nosuchscheme://bucket/lake")
    assert not layout.checked and layout.format == "parquet"


@pytest.mark.parametrize(
    ("pieces", "rows", "partitions", "cores", "expected"),
    [
        (1, MIN_SPREAD_ROWS, 2, 4, 4),  # one row group, two splits: one task works
        (1, MIN_SPREAD_ROWS - 1, 1, 4, 0),  # too small to pay for a shuffle
        (8, 10**6, 1, 4, 4),  # small files packed into one split
        (8, 10**6, 8, 4, 0),  # enough pieces and splits
        (None, None, 200, 4, 0),  # more files than MAX_FOOTERS
    ],
)
def test_spreading_follows_the_cores_not_the_files(
    pieces: int | None, rows: int | None, partitions: int, cores: int, expected: int
) -> None:
    files = MAX_FOOTERS + 1 if pieces is None else 1
    layout = InputLayout("parquet", True, files=files, pieces=pieces, rows=rows)
    assert spread(layout, cores, partitions) == expected
