"""The job's two Parquet outputs, written in one pass over the input, committed exactly once.

Spark writes one DataFrame per pass, and the job has two outputs (decisions and rejects): two
Spark writes would read and score the input twice, or cache all of it. Instead each task writes
its own rows straight from Arrow with pyarrow, into a staging folder per output, under a name
unique to its attempt, and returns one summary row (its counts and file names). The driver
collects those few rows: Spark returns exactly one per partition, from the attempt that
succeeded, so moving exactly the files they name into place commits each partition once, however
many attempts ran; the staging folder, with any failed attempt's files, is then removed.

Paths are opened with pyarrow's filesystems (`pyarrow.fs.FileSystem.from_uri`): a local path,
which on a cluster must be a filesystem every executor mounts, or s3://, gs://, hdfs://, abfs://.
"""

import os
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SUCCESS_MARKER = "_SUCCESS"
STAGING = "_temporary"
# Rows buffered before a row group is written: Spark hands batches of ARROW_BATCH_ROWS, and
# readers scan large row groups faster than many small ones.
ROW_GROUP_ROWS = 262_144


class OutputError(RuntimeError):
    """An output folder that cannot be used (exists, overlaps the other, unreachable)."""


@dataclass(frozen=True)
class Destination:
    """An output folder: its URI as given and where pyarrow finds it."""

    uri: str  # a URI, or an absolute local path (executors may run in another folder)

    @classmethod
    def of(cls, given: str) -> "Destination":
        """From a command-line path: a relative local path is made absolute here."""
        return cls(given if "://" in given else os.path.abspath(given))

    def open(self) -> tuple[pafs.FileSystem, str]:
        try:
            filesystem, path = pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowException, ValueError) as error:
            raise OutputError(f"cannot open output {self.uri}: {error}") from error
        return filesystem, path.rstrip("/")

    def staging_file(
        self, run_id: str, partition: int, attempt: int
    ) -> tuple[pafs.FileSystem, str]:
        """Where one task attempt writes its rows before the driver commits them."""
        filesystem, path = self.open()
        name = f"part-{partition:05d}-attempt-{attempt}.parquet"
        return filesystem, f"{path}/{STAGING}/{run_id}/{name}"

    def final_name(self, run_id: str, partition: int) -> str:
        return f"part-{partition:05d}-{run_id}.parquet"


def prepare(destinations: tuple[Destination, ...], *, overwrite: bool) -> frozenset[Destination]:
    """Each folder absent or empty (or, with `overwrite`, holding an earlier output, which
    stays until `commit` replaces it); no folder inside another. Creates nothing: a run that
    fails leaves no folder behind. Returns the folders that did not exist."""
    opened = [(d, *d.open()) for d in destinations]
    for i, (first, _, first_path) in enumerate(opened):
        for second, _, second_path in opened[i + 1 :]:
            a, b = PurePosixPath(first_path), PurePosixPath(second_path)
            if a == b or a in b.parents or b in a.parents:
                raise OutputError(f"outputs {first.uri} and {second.uri} overlap")
    absent = set()
    for destination, filesystem, path in opened:
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.File:
            raise OutputError(f"output {destination.uri} is a file, not a folder")
        if info.type == pafs.FileType.NotFound:
            absent.add(destination)
        elif filesystem.get_file_info(pafs.FileSelector(path)) and not overwrite:
            raise OutputError(
                f"output {destination.uri} exists and is not empty (--overwrite replaces it)"
            )
    return frozenset(absent)


class PartWriter:
    """One task attempt's rows for one output: a Parquet file opened at the first row."""

    def __init__(self, filesystem: pafs.FileSystem, path: str) -> None:
        self.filesystem = filesystem
        self.path = path
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def close(self) -> str | None:
        """The file's path, or None when this attempt had no rows for this output."""
        self._flush()
        if self._writer is None:
            return None
        self._writer.close()
        return self.path

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending)
        if self._writer is None:
            self.filesystem.create_dir(str(PurePosixPath(self.path).parent), recursive=True)
            self._writer = pq.ParquetWriter(self.path, table.schema, filesystem=self.filesystem)
        self._writer.write_table(table, row_group_size=len(table))
        self.rows += len(table)
        self._pending, self._pending_rows = [], 0


def commit(
    destination: Destination,
    run_id: str,
    staged: dict[int, str],
    schema: pa.Schema,
    *,
    replace: bool = False,
) -> list[str]:
    """Moves each partition's staged file into the folder (an empty file with `schema` when
    no partition had rows, so readers still see the columns) and removes the staging folder;
    with `replace`, first removes everything else the folder held (an earlier output).
    Returns the committed files."""
    filesystem, path = destination.open()
    filesystem.create_dir(path, recursive=True)
    if replace:
        for entry in filesystem.get_file_info(pafs.FileSelector(path)):
            if entry.base_name == STAGING:
                continue
            if entry.type == pafs.FileType.Directory:
                filesystem.delete_dir(entry.path)
            else:
                filesystem.delete_file(entry.path)
    committed = []
    for partition, staged_path in sorted(staged.items()):
        final = f"{path}/{destination.final_name(run_id, partition)}"
        filesystem.move(staged_path, final)
        committed.append(final)
    if not committed:
        final = f"{path}/{destination.final_name(run_id, 0)}"
        pq.write_table(schema.empty_table(), final, filesystem=filesystem)
        committed.append(final)
    if filesystem.get_file_info(f"{path}/{STAGING}").type == pafs.FileType.Directory:
        filesystem.delete_dir(f"{path}/{STAGING}")
    return committed


def abandon(destination: Destination, run_id: str, *, created: bool = False) -> None:
    """Removes what a failed run staged, and the folder itself when this run `created` it and
    it is empty; committed files of earlier runs stay."""
    filesystem, path = destination.open()
    if filesystem.get_file_info(path).type != pafs.FileType.Directory:
        return  # no task got as far as staging a file
    filesystem.delete_dir_contents(f"{path}/{STAGING}/{run_id}", missing_dir_ok=True)
    if filesystem.get_file_info(f"{path}/{STAGING}").type == pafs.FileType.Directory:
        filesystem.delete_dir(f"{path}/{STAGING}")
    if created and not filesystem.get_file_info(pafs.FileSelector(path)):
        filesystem.delete_dir(path)


def mark_complete(destination: Destination) -> None:
    """The empty _SUCCESS file Spark's own writers leave in a complete output folder."""
    filesystem, path = destination.open()
    with filesystem.open_output_stream(f"{path}/{SUCCESS_MARKER}"):
        pass


def footer_rows(destination: Destination, files: list[str]) -> int:
    """Rows in the committed files, read from their Parquet footers (no data is read)."""
    filesystem, _ = destination.open()
    return sum(pq.read_metadata(file, filesystem=filesystem).num_rows for file in files)
