"""Private files for records: directories 0700, files 0600, written whole or not at all."""

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Creates `path` (and parents) if missing and makes it 0700: records are readable only by
    the server's user."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def unique_stem(prefix: str, now: float) -> str:
    """`prefix-YYYYmmddTHHMMSS.ffffffZ-PID-TOKEN`: sorts by time, unique across workers."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return f"{prefix}-{stamp}-{os.getpid()}-{secrets.token_hex(4)}"


def create_private(path: Path) -> BinaryIO:
    """A new file opened for writing, 0600 from the start (never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return os.fdopen(fd, "wb")


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> int:
    """Writes through a hidden temporary name, fsyncs, renames to `path`: readers see the whole
    file or none of it. Returns the file's size."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with create_private(temporary) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)
    return size


def sync_dir(path: Path) -> None:
    """A rename or unlink survives a crash of the machine once its directory is synced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
