"""Bulk inputs (a pandas DataFrame, an Arrow table, a Parquet file or folder, a CSV file), read
as chunks of a fixed number of rows, each with its place in the whole input.

Files are read incrementally (Arrow datasets for Parquet, Arrow's streaming CSV reader), so a
file of any size is scored in bounded memory. Every input must have the 13 form fields as
columns; any other column is carried through to the result beside the decisions.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as ds

from client.errors import InputError
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS
from features.validation import cell_message

TableInput: TypeAlias = pd.DataFrame | pa.Table | str | os.PathLike[str]
RESULT_COLUMNS = ("probability", "status", "model")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
CSV_BLOCK_BYTES = 4 << 20  # one parse unit of the CSV reader (~60k rows of this schema)


@dataclass(frozen=True)
class Chunk:
    number: int  # which request, from 0
    offset: int  # the index of its first row in the whole input
    table: pa.Table  # every column of the input, these rows only
    numbers_as_text: bool = False  # a CSV's numeric fields read as text (client.text_numbers)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


@dataclass(frozen=True)
class Source:
    """An opened input: its schema, its row count when known without reading it (not for CSV),
    and a reader of its rows in order, in pieces of at most the given size."""

    schema: pa.Schema
    rows: int | None
    read: Callable[[int], Iterator[pa.RecordBatch | pa.Table]]
    numbers_as_text: bool = False  # a CSV read for per-row verdicts

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        """The whole input in order, every chunk exactly `chunk_rows` rows but the last."""
        offset = 0
        for number, table in enumerate(_rechunk(self.read(chunk_rows), chunk_rows)):
            yield Chunk(number, offset, table, self.numbers_as_text)
            offset += table.num_rows


def open_input(table: TableInput, *, numbers_as_text: bool = False) -> Source:
    """Opens any accepted input and checks its columns, before anything is sent.
    `numbers_as_text` (per-row verdicts): a CSV file's numeric fields are read as text, so a
    cell that is no number becomes that row's verdict instead of stopping the read."""
    if isinstance(table, pd.DataFrame):
        source = _table_source(from_pandas(table))
    elif isinstance(table, pa.Table):
        source = _table_source(table)
    elif isinstance(table, str | os.PathLike):
        source = _file_source(Path(table), numbers_as_text)
    else:
        raise InputError(
            f"cannot score a {type(table).__name__}: give a pandas DataFrame, a pyarrow Table, "
            "or the path of a Parquet file or folder or a CSV file"
        )
    check_columns(source.schema.names)
    return source


def check_columns(names: Iterable[str]) -> None:
    names = list(names)
    missing = [name for name in FIELDS if name not in names]
    if missing:
        raise InputError(f"input has no column for field(s) {', '.join(missing)}")
    clashes = [name for name in RESULT_COLUMNS if name in names]
    if clashes:
        raise InputError(
            f"input column(s) {', '.join(clashes)} would clash with the result's columns "
            f"({', '.join(RESULT_COLUMNS)}): rename or drop them first"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"input has more than one column named {', '.join(twice)}")


def from_pandas(frame: pd.DataFrame, *, keep_index: bool = True) -> pa.Table:
    """`frame` as Arrow. With `keep_index`, an index other than the default RangeIndex becomes
    a column, carried through like any other non-field column."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=None if keep_index else False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise InputError(f"DataFrame cannot be read as Arrow: {error}") from error


def _table_source(table: pa.Table) -> Source:
    def read(rows: int) -> Iterator[pa.Table]:
        for start in range(0, table.num_rows, rows):
            yield table.slice(start, rows)

    return Source(table.schema, table.num_rows, read)


def _file_source(path: Path, numbers_as_text: bool) -> Source:
    name = path.name.lower()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir() or name.endswith(PARQUET_SUFFIXES):
        return _parquet_source(path)
    if name.endswith(CSV_SUFFIXES):
        return _csv_source(path, numbers_as_text)
    raise InputError(
        f"{path}: unknown kind of file; give a Parquet file ({', '.join(PARQUET_SUFFIXES)}), "
        f"a folder of Parquet files, or a CSV file ({', '.join(CSV_SUFFIXES)})"
    )


def _parquet_source(path: Path) -> Source:
    try:
        dataset = ds.dataset(path, format="parquet")
        rows = dataset.count_rows()
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: not readable as Parquet ({error})") from error

    def read(batch_rows: int) -> Iterator[pa.RecordBatch]:
        # Files in path order, batches in file order (the dataset scanner keeps order); a
        # small readahead keeps memory to a few batches whatever the size of the data.
        yield from dataset.to_batches(
            batch_size=batch_rows, batch_readahead=2, fragment_readahead=1
        )

    return Source(dataset.schema, rows, read)


def _csv_source(path: Path, numbers_as_text: bool) -> Source:
    """Numeric fields read as float64 (or, with `numbers_as_text`, as text) and category fields
    as text; every other column as text, exactly as written (an id such as 00123 keeps its
    zeros, and no column can change type halfway through a large file)."""
    try:
        with pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16)) as header:
            names = header.schema.names
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: not readable as CSV ({error})") from error
    types = {name: pa.string() for name in names}
    types.update(
        {name: pa.string() if numbers_as_text else pa.float64() for name in NUMERIC_FIELDS}
    )
    types.update({name: pa.string() for name in CATEGORICAL_FIELDS})

    # Numbers as text (per-row verdicts): read as the Spark job reads a CSV, an empty cell as
    # null whatever its column, any other text as written ("NA" is text, no number).
    convert = (
        pcsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True)
        if numbers_as_text
        else pcsv.ConvertOptions(column_types=types)
    )

    def read(_: int) -> Iterator[pa.RecordBatch]:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=convert,
        )
        rows = 0
        with reader:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as error:
                    raise _csv_error(path, rows, error) from error
                rows += batch.num_rows
                yield batch

    schema = pa.schema([(name, types[name]) for name in names])
    return Source(schema, None, read, numbers_as_text)


def _csv_error(path: Path, rows_before: int, error: pa.ArrowInvalid) -> InputError:
    """Arrow's CSV reader names the column but not the row of a value that is not a number:
    read the rest of the file from the failing block as text to find it."""
    found = _first_non_number(path, rows_before)
    if found is None:
        return InputError(f"{path}: at or after row {rows_before}: {error}")
    field, row, value = found
    location = f"{field}[{row}]"
    message = cell_message(field, value)  # as the server words it
    return InputError(
        f"{path}: {location}: {message}", details=[{"location": location, "message": message}]
    )


def _first_non_number(path: Path, rows_before: int) -> tuple[str, int, str] | None:
    null_values = set(pcsv.ConvertOptions().null_values)  # what a float column reads as null
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(
            block_size=CSV_BLOCK_BYTES, skip_rows_after_names=rows_before
        ),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(NUMERIC_FIELDS, pa.string()),
            include_columns=list(NUMERIC_FIELDS),
        ),
    )
    row = rows_before
    with reader:
        for batch in reader:
            for field in NUMERIC_FIELDS:
                column = batch.column(field)
                nulls = pc.is_in(column, value_set=pa.array(sorted(null_values)))
                texts = pc.if_else(nulls, pa.scalar(None, pa.string()), column)
                try:
                    pc.cast(texts, pa.float64())
                    continue
                except pa.ArrowInvalid:
                    pass
                for index, value in enumerate(texts.to_pylist()):
                    if value is not None and not _is_number(value):
                        return field, row + index, value
            row += batch.num_rows
    return None


def _is_number(text: str) -> bool:
    try:
        pa.scalar(text).cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _rechunk(pieces: Iterable[pa.RecordBatch | pa.Table], rows: int) -> Iterator[pa.Table]:
    """Pieces of any sizes regrouped into tables of exactly `rows` rows (the last may be
    shorter); slices, no copies."""
    held: list[pa.RecordBatch] = []
    count = 0
    for piece in pieces:
        batches = piece.to_batches() if isinstance(piece, pa.Table) else [piece]
        for whole in batches:
            batch = whole
            while batch.num_rows:
                take = min(rows - count, batch.num_rows)
                held.append(batch.slice(0, take))
                count += take
                batch = batch.slice(take)
                if count == rows:
                    yield pa.Table.from_batches(held)
                    held, count = [], 0
    if count:
        yield pa.Table.from_batches(held)
