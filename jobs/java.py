"""Spark 4 runs on Java 17 or newer: find the Java that Spark would start and check it first.

Spark's launcher (bin/spark-class) runs `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java`
on PATH; without a usable one, PySpark fails later with an obscure gateway error. This check
gives the job one clear message instead.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_JAVA = 17
INSTALL_HINT = "install Java 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
# `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` or `java version "1.8.0_392"`.
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


class JavaError(RuntimeError):
    """No Java that Spark can run on; the message says what was found and what to do."""


@dataclass(frozen=True)
class Java:
    path: str
    major: int


def java_command(env: Mapping[str, str]) -> tuple[str | None, str]:
    """The java executable Spark's launcher would run, and where it was looked for."""
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        where = f"JAVA_HOME={java_home}"
        return (str(candidate) if os.access(candidate, os.X_OK) else None), where
    return shutil.which("java", path=env.get("PATH", "")), "PATH (JAVA_HOME is not set)"


def parse_major(version_output: str) -> int | None:
    """17 from `version "17.0.15"`, 8 from `version "1.8.0_392"`; None if no version line."""
    found = _VERSION.search(version_output)
    if found is None:
        return None
    major = int(found.group(1))
    if major == 1 and found.group(2) is not None:  # the 1.x scheme of Java 8 and older
        return int(found.group(2))
    return major


def check_java(env: Mapping[str, str] | None = None) -> Java:
    """The Java Spark will use, if it is 17 or newer; JavaError otherwise."""
    env = os.environ if env is None else env
    path, where = java_command(env)
    if path is None:
        raise JavaError(f"no Java found in {where}; Spark needs Java {MIN_JAVA}+: {INSTALL_HINT}")
    try:
        result = subprocess.run(
            [path, "-version"], capture_output=True, text=True, timeout=60, env=dict(env)
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise JavaError(f"cannot run {path} ({error}); {INSTALL_HINT}") from error
    major = parse_major(result.stderr + result.stdout)
    if result.returncode != 0 or major is None:
        raise JavaError(f"{path} -version failed or printed no version; {INSTALL_HINT}")
    if major < MIN_JAVA:
        raise JavaError(f"{path} is Java {major}; Spark needs Java {MIN_JAVA}+: {INSTALL_HINT}")
    return Java(path=path, major=major)
