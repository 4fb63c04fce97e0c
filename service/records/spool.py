"""A bounded on-disk spool: record tables the sink could not take, replayed when it is back.

Each spooled table is one Arrow IPC file (`spool-<time>-<pid>-<token>.arrow`, 0600, written
whole through a temporary name). Workers may share a spool directory: a file is replayed by
whoever holds its lock (flock), and deleted only after the sink accepted it, so a crash while
replaying writes it again later (at least once) and never loses it. The bound counts every
file in the directory, whichever worker wrote it.
"""

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from service.records.files import private_dir, unique_stem, write_atomically
from service.records.schema import SCHEMA

logger = logging.getLogger("credit_risk")
SUFFIX = ".arrow"


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = private_dir(directory)
        self.max_bytes = max_bytes

    def files(self) -> list[Path]:
        """Spooled files, oldest first."""
        return sorted(
            Path(entry.path)
            for entry in os.scandir(self.directory)
            if entry.name.startswith("spool-") and entry.name.endswith(SUFFIX)
        )

    def size(self) -> int:
        total = 0
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):  # replayed by another worker meanwhile
                total += path.stat().st_size
        return total

    def full(self) -> bool:
        return self.size() >= self.max_bytes

    def put(self, table: pa.Table, now: float, force: bool = False) -> bool:
        """Spools `table`; False (nothing written) when it would pass the bound, unless
        `force` (the final drain: better over the bound than lost)."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table)
        data = sink.getvalue()
        if not force and self.size() + data.size > self.max_bytes:
            return False
        path = self.directory / f"{unique_stem('spool', now)}{SUFFIX}"
        write_atomically(path, lambda handle: handle.write(data))
        return True

    def replay(self, write: Callable[[pa.Table], None], max_files: int) -> int:
        """Hands up to `max_files` spooled tables, oldest first, to `write`, deleting each once
        written; returns the rows replayed. An exception from `write` stops the replay and
        propagates (the file stays)."""
        rows = 0
        for path in self.files()[:max_files]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                if not _lock_if_current(fd, path):
                    continue
                with pa.OSFile(str(path), "rb") as source:
                    table = pa.ipc.open_file(source).read_all()
                write(table)
                path.unlink()
                rows += table.num_rows
            finally:
                os.close(fd)
        return rows


def _lock_if_current(fd: int, path: Path) -> bool:
    """Locks the open file; False when another worker holds it or already replayed it (the
    path is gone, or now names another file)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
