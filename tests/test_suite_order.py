"""The suite's run order (tests/conftest.py) names test files that exist: a renamed file would
silently lose its early start."""

from pathlib import Path

from tests.conftest import LONGEST_FIRST

ROOT = Path(__file__).resolve().parent.parent


def test_longest_first_names_existing_test_files() -> None:
    missing = [path for path in LONGEST_FIRST if not (ROOT / path).is_file()]
    assert missing == []
