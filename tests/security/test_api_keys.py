"""The API-key file: its format, its errors (which never show a key), reloading on change."""

import logging
import os
from pathlib import Path

import pytest

from service.http.api_keys import ApiKeys, KeyFileError, digest, parse_key_file
from tests.security.conftest import KEY_FILE, PARTNER_KEY, WEBFORM_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rewrite(path: Path, text: str) -> None:
    """Replace the file the way an editor or a Kubernetes Secret update does (a new inode)."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


def test_a_key_file_maps_digests_to_client_names() -> None:
    second_partner_key = "partner-next-key-00000000"
    text = KEY_FILE + f"  partner   {second_partner_key}  \n# partner old-key-retired-000000\n"
    keys = parse_key_file(text, "keys")
    assert keys == {
        digest(PARTNER_KEY.encode()): "partner",
        digest(WEBFORM_KEY.encode()): "webform",
        digest(second_partner_key.encode()): "partner",  # a name may have several keys
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("partner\n", "line 1: expected `NAME KEY`"),
        ("partner key with-spaces-0123456789\n", "line 1: expected `NAME KEY`"),
        ("# ok\npart/ner secret-key-0123456789abc\n", "line 2: a client name"),
        ("-partner secret-key-0123456789abc\n", "line 1: a client name"),
        ("partner short-secret\n", "line 1: a key is at least 16"),
        ("partner sha256:abc123\n", "line 1: sha256: must be followed by 64 hex digits"),
        (
            "a secret-key-0123456789abc\nb secret-key-0123456789abc\n",
            "line 2: the same key as line 1",
        ),
        ("# nobody\n\n", "no keys"),
    ],
)
def test_a_malformed_file_names_the_line_and_never_a_key(text: str, says: str) -> None:
    with pytest.raises(KeyFileError) as raised:
        parse_key_file(text, "keys")
    message = str(raised.value)
    assert says in message, message
    for word in text.split():
        if len(word) >= 12:  # every would-be key of the cases
            assert word not in message, message


def test_keys_are_reloaded_when_the_file_changes(key_file: Path) -> None:
    clock = Clock()
    keys = ApiKeys(key_file, reload_s=5, clock=clock)
    assert keys.client(PARTNER_KEY.encode()) == "partner"
    assert keys.client(WEBFORM_KEY.encode()) == "webform"
    assert keys.client(b"webform-key-fedcba9876543211") is None

    rotated = "partner-key-rotated-1111111111"
    _rewrite(key_file, KEY_FILE.replace(PARTNER_KEY, rotated))
    clock.now += 4.9  # not checked yet: at most one stat per interval
    assert keys.client(rotated.encode()) is None
    clock.now += 0.2
    assert keys.client(rotated.encode()) == "partner"
    assert keys.client(PARTNER_KEY.encode()) is None


def test_revocation_fails_closed(key_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """After an edit the keys in force are the file's valid lines: a bad line grants nothing
    and does not keep a removed key alive; an empty or deleted file leaves no key valid."""
    clock = Clock()
    keys = ApiKeys(key_file, reload_s=1, clock=clock)
    revoked = KEY_FILE.replace(f"partner {PARTNER_KEY}", "partner")  # key removed, line broken
    _rewrite(key_file, revoked)
    with caplog.at_level(logging.WARNING, logger="credit_risk"):
        for _ in range(3):  # three checks of the same file: one warning
            clock.now += 1.5
            assert keys.client(PARTNER_KEY.encode()) is None
            assert keys.client(WEBFORM_KEY.encode()) == "webform"
    warnings = [
        r.getMessage() for r in caplog.records if "refused (granting nothing)" in r.getMessage()
    ]
    assert len(warnings) == 1, caplog.text
    assert f"{key_file} line 2: expected `NAME KEY`" in warnings[0]
    assert PARTNER_KEY not in caplog.text and WEBFORM_KEY not in caplog.text

    _rewrite(key_file, "# every client removed\n")
    clock.now += 1.5
    assert keys.client(WEBFORM_KEY.encode()) is None
    assert keys.clients == frozenset()

    _rewrite(key_file, KEY_FILE)
    clock.now += 1.5
    assert keys.client(WEBFORM_KEY.encode()) == "webform"
    caplog.clear()
    key_file.unlink()  # deleted: nothing is valid, one error
    with caplog.at_level(logging.WARNING, logger="credit_risk"):
        for _ in range(3):
            clock.now += 1.5
            assert keys.client(WEBFORM_KEY.encode()) is None
    errors = [r for r in caplog.records if "cannot read the API key file" in r.getMessage()]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR, caplog.text
    assert "no API key is valid" in errors[0].getMessage()

    fixed = "webform-key-rotated-2222222222"
    _rewrite(key_file, f"webform {fixed}\n")
    clock.now += 1.5
    assert keys.client(fixed.encode()) == "webform"
    assert keys.client(PARTNER_KEY.encode()) is None
    assert keys.clients == {"webform"}


def test_an_unusable_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read the API key file"):
        ApiKeys(tmp_path / "missing", reload_s=5)
    broken = tmp_path / "broken"
    broken.write_text("partner\n")
    with pytest.raises(KeyFileError, match="line 1"):
        ApiKeys(broken, reload_s=5)
