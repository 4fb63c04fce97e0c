"""The job's input, checked on the driver before Spark starts: a wrong path, an unreadable
file or a missing form field costs a second here, where Spark would find it after its start-up.

Read with pyarrow's filesystems: a local path, or a URI pyarrow opens (s3://, gs://, hdfs://,
abfs://). A URI pyarrow cannot open is left for Spark to read (`checked` is False). The check
also tells the layout that decides how many tasks can share the work: a Parquet row group is
read by exactly one Spark task, so a file of one row group is one task, whatever the cores.
"""

import os
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.columns import check_input_schema

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".xz", ".lz4", ".snappy")
# Footers read to count row groups: enough files to know whether there are fewer row groups
# than cores; beyond that many, the files alone spread the work.
MAX_FOOTERS = 64


class InputError(ValueError):
    """The input cannot be read; the message names the path and what is wrong."""


@dataclass(frozen=True)
class InputLayout:
    """What the driver learnt of the input before Spark reads it."""

    format: str  # "parquet" or "csv"
    checked: bool  # False: a URI pyarrow cannot open, left to Spark
    files: int = 0
    # Pieces Spark can give to different tasks: row groups for Parquet (None when more files
    # than MAX_FOOTERS), files for compressed CSV; None where Spark splits by bytes (plain CSV).
    pieces: int | None = None
    rows: int | None = None  # Parquet, from the footers read (None beyond MAX_FOOTERS files)
    size: int = 0  # bytes in all files
    schema: pa.Schema | None = None  # of the first file, as pyarrow reads it


def input_format(path: str, requested: str, files: list[str] | None = None) -> str:
    """csv for a .csv file or a folder of them; parquet otherwise."""
    if requested != "auto":
        return requested
    if path.lower().endswith(CSV_SUFFIXES):
        return "csv"
    if files and any(name.lower().endswith(CSV_SUFFIXES) for name in files):
        return "csv"
    return "parquet"


def _is_hidden(relative: str) -> bool:
    """Spark skips files and folders whose name starts with _ or . (_SUCCESS, .crc files)."""
    return any(part.startswith(("_", ".")) for part in PurePosixPath(relative).parts)


def _open(path: str) -> tuple[pafs.FileSystem, str] | None:
    if "://" not in path:
        return pafs.LocalFileSystem(), os.path.abspath(path)
    try:
        filesystem, inner = pafs.FileSystem.from_uri(path)
    except (pa.ArrowException, ValueError):
        return None
    return filesystem, inner


def data_files(filesystem: pafs.FileSystem, path: str, given: str) -> list[pafs.FileInfo]:
    """The file itself, or the folder's files Spark would read (sorted, hidden ones skipped)."""
    try:
        info = filesystem.get_file_info(path)
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"cannot read input {given}: {error}") from error
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"input {given} does not exist")
    if info.type == pafs.FileType.File:
        return [info]
    try:
        found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"cannot list input folder {given}: {error}") from error
    files = sorted(
        (
            entry
            for entry in found
            if entry.type == pafs.FileType.File
            and not _is_hidden(entry.path[len(path) :].lstrip("/"))
            and entry.size
        ),
        key=lambda entry: entry.path,
    )
    if not files:
        raise InputError(f"input folder {given} has no data files")
    return files


def _check_readable(filesystem: pafs.FileSystem, files: list[str], given: str) -> None:
    if isinstance(filesystem, pafs.LocalFileSystem):
        for file in files:
            if not os.access(file, os.R_OK):
                raise InputError(f"cannot read input {given}: {file}: permission denied")


def _parquet(
    filesystem: pafs.FileSystem, files: list[str], given: str
) -> tuple[pa.Schema, int, int]:
    """The first file's schema, and row groups and rows in the first MAX_FOOTERS files."""
    schema: pa.Schema | None = None
    row_groups = rows = 0
    for file in files[:MAX_FOOTERS]:
        try:
            with filesystem.open_input_file(file) as source:
                metadata = pq.read_metadata(source)
        except pa.ArrowInvalid as error:
            raise InputError(
                f"cannot score {given}: {file}: not a Parquet file ({error})"
            ) from error
        except (OSError, pa.ArrowException) as error:
            raise InputError(f"cannot read input {given}: {file}: {error}") from error
        if schema is None:
            schema = metadata.schema.to_arrow_schema()
        row_groups += metadata.num_row_groups
        rows += metadata.num_rows
    assert schema is not None  # files is never empty
    return schema, row_groups, rows


def _csv_header(filesystem: pafs.FileSystem, file: str, given: str) -> pa.Schema:
    """The header's names, every column text (the job reads CSV without inferring types)."""
    try:
        with filesystem.open_input_stream(file, compression="detect") as stream:
            reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 20))
            names = reader.schema.names
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"cannot read CSV input {given}: {file}: {error}") from error
    return pa.schema([pa.field(name, pa.string()) for name in names])


def check_input(path: str, requested_format: str = "auto") -> InputLayout:
    """The input exists, every file is readable, the first file has the 13 form fields (raises
    InputError or jobs.columns.InputSchemaError); and how many pieces Spark can spread."""
    opened = _open(path)
    if opened is None:
        return InputLayout(format=input_format(path, requested_format), checked=False)
    filesystem, inner = opened
    infos = data_files(filesystem, inner, path)
    files = [info.path for info in infos]
    fmt = input_format(path, requested_format, files)
    _check_readable(filesystem, files, path)
    rows: int | None = None
    if fmt == "csv":
        schema = _csv_header(filesystem, files[0], path)
        compressed = all(file.lower().endswith(COMPRESSED_SUFFIXES) for file in files)
        pieces = len(files) if compressed else None
    else:
        schema, row_groups, counted = _parquet(filesystem, files, path)
        pieces, rows = (row_groups, counted) if len(files) <= MAX_FOOTERS else (None, None)
    check_input_schema(schema, text_numbers=fmt == "csv")
    return InputLayout(
        format=fmt,
        checked=True,
        files=len(files),
        pieces=pieces,
        rows=rows,
        size=sum(info.size or 0 for info in infos),
        schema=schema,
    )
