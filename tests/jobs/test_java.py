"""The Java check on its own: the version parser and the lookup Spark's launcher does."""

from pathlib import Path

import pytest

from jobs.java import JavaError, check_java, parse_major


@pytest.mark.parametrize(
    ("printed", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.22" 2024-01-16', 11),
        ("Error: could not find libjava.so", None),
    ],
)
def test_versions_are_read_in_both_numbering_schemes(printed: str, major: int | None) -> None:
    assert parse_major(printed) == major


def _fake_java(home: Path, version_line: str) -> Path:
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return java


def test_java_home_wins_over_path_as_in_spark_launcher(tmp_path: Path) -> None:
    old = _fake_java(tmp_path / "old", 'java version "1.8.0_392"')
    new = _fake_java(tmp_path / "new", 'openjdk version "17.0.2"')
    found = check_java({"JAVA_HOME": str(tmp_path / "new"), "PATH": str(old.parent)})
    assert (found.path, found.major) == (str(new), 17)
    with pytest.raises(JavaError, match=r"is Java 8; Spark needs Java 17\+"):
        check_java({"PATH": str(old.parent)})


def test_missing_java_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(JavaError, match=r"no Java found in JAVA_HOME=/nowhere; .*openjdk-17"):
        check_java({"JAVA_HOME": "/nowhere", "PATH": ""})
    with pytest.raises(JavaError, match=r"no Java found in PATH \(JAVA_HOME is not set\)"):
        check_java({"PATH": str(tmp_path)})


def test_this_machine_has_java_17_or_newer() -> None:
    """CI installs Java 17 (.ci/run); the job's tests need it, so its absence must fail here."""
    assert check_java().major >= 17
