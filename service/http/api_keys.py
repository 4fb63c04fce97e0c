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

Revocation fails closed: after a change, the keys in force are exactly the valid lines of the
file as it now is. A line that cannot be parsed grants nothing (its client gets 401) and is
named in a warning; a file that is empty, deleted or unreadable leaves no key valid (every
keyed request gets 401) and logs an error. Only at start is a bad file refused outright (the
server does not start), so a typo is seen before any client depends on it.
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


def _parse_line(content: str) -> tuple[str, bytes]:
    """(client name, key digest) of one non-comment line; ValueError says what is wrong."""
    parts = content.split()
    if len(parts) != 2:
        raise ValueError("expected `NAME KEY` or `NAME sha256:HEX`")
    name, secret = parts
    if not NAME.fullmatch(name):
        raise ValueError(
            "a client name is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    hashed = HASHED.fullmatch(secret)
    if hashed is not None:
        return name, bytes.fromhex(hashed.group(1))
    if secret.startswith("sha256:"):
        raise ValueError("sha256: must be followed by 64 hex digits")
    if len(secret) < MIN_KEY_CHARS or not PLAIN_KEY.fullmatch(secret):
        raise ValueError(
            f"a key is at least {MIN_KEY_CHARS} printable ASCII characters without spaces"
        )
    return name, digest(secret.encode("ascii"))


def parse_key_lines(text: str, source: str) -> tuple[dict[bytes, str], list[str]]:
    """(digest -> client name of every valid line, what is wrong with the others: each names
    `source` and its line, never a key)."""
    keys: dict[bytes, str] = {}
    lines: dict[bytes, int] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        content = line.strip()
        if not content or content.startswith("#"):
            continue
        where = f"{source} line {number}"
        try:
            name, key_digest = _parse_line(content)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if key_digest in keys:
            problems.append(f"{where}: the same key as line {lines[key_digest]}")
            continue
        keys[key_digest] = name
        lines[key_digest] = number
    if not keys:
        problems.append(f"{source}: no keys (every request would be refused)")
    return keys, problems


def parse_key_file(text: str, source: str) -> dict[bytes, str]:
    """Digest -> client name; KeyFileError for the first line that cannot be used."""
    keys, problems = parse_key_lines(text, source)
    if problems:
        raise KeyFileError(problems[0])
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
    `reload_s` seconds (a stat); a changed file's valid lines replace the keys in force (fails
    closed: see the module's docstring), with one log line per version of the file."""

    def __init__(
        self, path: Path, reload_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.reload_s = reload_s
        self._clock = clock
        self._keys, self._version = read_key_file(path)
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
            self._unreadable(UNREADABLE, error)
            return
        if version == self._version:
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self._unreadable(version, error)
            return
        keys, problems = parse_key_lines(text, str(self.path))
        self._keys, self._version = keys, version
        clients = len(set(keys.values()))
        if problems:
            logger.warning(
                "API keys reloaded from %s: %d keys for %d clients; refused (granting nothing): %s",
                self.path,
                len(keys),
                clients,
                "; ".join(problems),
            )
        else:
            logger.warning(
                "API keys reloaded from %s: %d keys for %d clients", self.path, len(keys), clients
            )

    def _unreadable(self, version: FileVersion, error: Exception) -> None:
        """No key is valid while the file cannot be read (fails closed)."""
        if version != self._version:
            logger.error(
                "cannot read the API key file %s: %s; no API key is valid until it can be read",
                self.path,
                error,
            )
        self._keys, self._version = {}, version
