"""Load generators, each run bounded in time: headless Locust (the suite) and wrk (a C cross-check).

Both run as child processes in their own process group; past the hard deadline the whole group
(Locust's forked workers included) is killed and the run reported as failed, never left behind.
"""

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from harness.process import PROJECT_ROOT

LOCUSTFILE = Path(__file__).parent / "locustfile.py"
GRACE_S = 60  # start-up, ramp-up, stop timeout and CSV writing on top of --run-time


class LoadError(RuntimeError):
    """A load run did not finish or left no statistics."""


@dataclass(frozen=True)
class LoadRun:
    """One fixed-concurrency run against one endpoint."""

    users: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def _run_bounded(
    name: str,
    argv: Sequence[str],
    *,
    timeout_s: float,
    log: Path,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run argv to completion, its output to `log`; kill its process group past timeout_s."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise LoadError(f"{name} ran past {timeout_s:.0f} s; killed") from None


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def run_locust(
    url: str,
    user_class: str,
    users: int,
    seconds: int,
    workdir: Path,
    *,
    processes: int = 2,
    env: Mapping[str, str] | None = None,
) -> LoadRun:
    """One headless Locust run of `user_class` at a fixed user count.

    Statistics are reset once all users are spawned, so ramp-up is not counted. From 16 users
    Locust forks `processes` workers: one Python process tops out around 2-3k req/s here.
    """
    prefix = workdir / f"{user_class}-{users}"
    forks = ["--processes", str(processes)] if processes > 1 and users >= 16 else []
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), user_class,
        "--headless", "--host", url, "-u", str(users), "-r", str(users),
        "--run-time", f"{seconds}s", "--stop-timeout", "5", "--reset-stats",
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING", *forks,
    ]  # fmt: skip
    log = prefix.with_suffix(".log")
    _run_bounded("locust", argv, timeout_s=seconds + GRACE_S, log=log, env=env)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise LoadError(f"Locust wrote no statistics:\n{_tail(log)}")
    with open(stats) as handle:
        row = next((r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"), None)
    if row is None or int(row["Request Count"]) == 0:
        raise LoadError(f"Locust made no requests:\n{_tail(log)}")
    return LoadRun(
        users=users,
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        rps=float(row["Requests/s"]),
        p50_ms=float(row["50%"]),
        p95_ms=float(row["95%"]),
        p99_ms=float(row["99%"]),
        max_ms=float(row["Max Response Time"]),
    )


_WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local path = os.getenv("BENCH_PATH")
local headers = {["Content-Type"] = "application/json"}
for name, value in (os.getenv("BENCH_HEADERS") or ""):gmatch("([^:\\n]+): ([^\\n]*)") do
  headers[name] = value
end
local i = 0
request = function()
  i = (i % #bodies) + 1
  return wrk.format("POST", path, headers, bodies[i])
end
"""


def _wrk_ms(output: str, percentile: str) -> float | None:
    found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if found is None:
        return None
    value, unit = float(found.group(1)), found.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000}[unit]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    connections: int,
    seconds: int,
    workdir: Path,
    records: Sequence[Mapping[str, object]],
) -> dict[str, float]:
    """Single /classify requests from wrk (C, one thread, distinct applicants).

    wrk needs far less CPU per request than Locust, so on 2 shared cores it shows what the server
    does when the load generator is not the bottleneck.
    """
    bodies = [orjson.dumps(record) for record in records]
    return run_wrk_bodies(url, "/classify", bodies, connections, seconds, workdir)


def run_wrk_bodies(
    url: str,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    seconds: int,
    workdir: Path,
    *,
    threads: int = 1,
    timeout_s: float | None = None,
    name: str = "wrk",
    headers: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """wrk posting `bodies` (one JSON document each, in turn) to `path` on `connections`
    kept-alive connections, with `headers` besides the JSON content type: rate, percentiles
    (all answers), non-2xx and socket errors."""
    bodies_file, script = workdir / f"{name}-bodies.jsonl", workdir / "post.lua"
    bodies_file.write_bytes(b"\n".join(bodies))
    script.write_text(_WRK_SCRIPT)
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(script), *(["--timeout", f"{round(timeout_s)}s"] if timeout_s else []), f"{url}{path}",
    ]  # fmt: skip
    log = workdir / f"{name}-{connections}.log"
    env = {"BENCH_BODIES": str(bodies_file), "BENCH_PATH": path}
    env["BENCH_HEADERS"] = "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())
    _run_bounded("wrk", argv, timeout_s=seconds + GRACE_S, log=log, env=env)
    output = log.read_text(errors="replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise LoadError(f"wrk printed no rate:\n{output[-2000:]}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    timeouts = re.search(r"timeout (\d+)", socket_errors.group(1)) if socket_errors else None
    result = {
        "connections": float(connections),
        "rps": float(rps.group(1)),
        "requests": float(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": float(sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))))
        if socket_errors
        else 0.0,
        "timeouts": float(timeouts.group(1)) if timeouts else 0.0,
    }
    for percentile in ("50", "90", "99"):
        value = _wrk_ms(output, percentile)
        if value is not None:
            result[f"p{percentile}_ms"] = value
    return result
