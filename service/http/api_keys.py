"""The API-key file: which clients may call, by name, reloaded when it changes.

One client a line, `NAME KEY` or `NAME sha256:HEX` (HEX: the SHA-256 of the key, so the file
need not hold the key itself); blank lines and lines starting with `#` are ignored. A name may
have several keys (rotation: add the new key, move the client over, remove the old one); a key
belongs to one name. Names are metric labels: letters, digits, `.`, `_`, `-`, at most 64.

Only SHA-256 digests are kept in memory, in a dict keyed by digest. A lookup hashes the
presented key and probes the dict; what it compares are digests of the presented key, never key
bytes, and the probe's bucket comes from Python's per-process keyed SipHash of the digest: its
time says nothing an attacker can use to approach a valid key (matching a digest's prefix would
still need a SHA-256 preimage).

Errors name the file and line, never a key.
"""

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("credit_risk")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HASHED = re.compile(r"sha256:([0-9a-fA-F]{64})")
PLAIN_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
MIN_KEY_CHARS = 16

FileVersion = tuple[int, int, int]  # inode, size, mtime in ns
UNREADABLE: FileVersion = (-1, -1, -1)


class KeyFileError(ValueError):
    """The key file cannot be used as it is (the message names the file and line)."""


def digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def parse_key_file(text: str, source: str) -> dict[bytes, str]:
    """Digest -> client name."""
    keys: dict[bytes, str] = {}
    lines: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        content = line.strip()
        if not content or content.startswith("#"):
            continue
        where = f"{source} line {number}"
        parts = content.split()
        if len(parts) != 2:
            raise KeyFileError(f"{where}: expected `NAME KEY` or `NAME sha256:HEX`")
        name, secret = parts
        if not NAME.fullmatch(name):
            raise KeyFileError(
                f"{where}: a client name is 1-64 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit"
            )
        hashed = HASHED.fullmatch(secret)
        if hashed is not None:
            key_digest = bytes.fromhex(hashed.group(1))
        elif secret.startswith("sha256:"):
            raise KeyFileError(f"{where}: sha256: must be followed by 64 hex digits")
        elif len(secret) < MIN_KEY_CHARS or not PLAIN_KEY.fullmatch(secret):
            raise KeyFileError(
                f"{where}: a key is at least {MIN_KEY_CHARS} printable ASCII characters "
                "without spaces"
            )
        else:
            key_digest = digest(secret.encode("ascii"))
        if key_digest in keys:
            raise KeyFileError(f"{where}: the same key as line {lines[key_digest]}")
        keys[key_digest] = name
        lines[key_digest] = number
    if not keys:
        raise KeyFileError(f"{source}: no keys (every request would be refused)")
    return keys


def _version(path: Path) -> FileVersion:
    stat = os.stat(path)  # follows links: a Kubernetes Secret update swaps a symlink
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def read_key_file(path: Path) -> tuple[dict[bytes, str], FileVersion]:
    """The keys and the version of the file they came from; KeyFileError if unusable."""
    try:
        version = _version(path)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"cannot read the API key file {path}: {error}") from error
    return parse_key_file(text, str(path)), version


class ApiKeys:
    """The clients of a key file. `client(key)` checks the file for changes at most every
    `reload_s` seconds (a stat); a changed file that cannot be used keeps the keys in force
    and logs one warning per version of the file."""

    def __init__(
        self, path: Path, reload_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.reload_s = reload_s
        self._clock = clock
        self._keys, self._version = read_key_file(path)
        self._refused_version: FileVersion | None = None
        self._next_check = clock() + reload_s

    @property
    def clients(self) -> frozenset[str]:
        return frozenset(self._keys.values())

    def client(self, key: bytes) -> str | None:
        """The name of the client whose key this is, or None."""
        if self._clock() >= self._next_check:
            self.reload_if_changed()
        return self._keys.get(digest(key))

    def reload_if_changed(self) -> None:
        self._next_check = self._clock() + self.reload_s
        try:
            version = _version(self.path)
        except OSError as error:
            self._refuse(UNREADABLE, f"cannot read the API key file {self.path}: {error}")
            return
        if version == self._version:
            self._refused_version = None  # back to the file in force
            return
        if version == self._refused_version:
            return
        try:
            keys, version = read_key_file(self.path)
        except KeyFileError as error:
            self._refuse(version, str(error))
            return
        self._keys, self._version, self._refused_version = keys, version, None
        logger.warning(
            "API keys reloaded from %s: %d keys for %d clients",
            self.path,
            len(keys),
            len(self.clients),
        )

    def _refuse(self, version: FileVersion, reason: str) -> None:
        if version != self._refused_version:
            logger.warning("%s; keeping the %d API keys loaded before", reason, len(self._keys))
        self._refused_version = version
