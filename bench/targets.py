"""Issue 5's targets, checked against one HTTP results file (bench/results/http.json)."""

from dataclasses import dataclass
from typing import Any

from bench.modes import BASELINE, FLASK, OURS

Run = dict[str, Any]
Results = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """One target: met (True/False), or None where the run did not measure it."""

    target: str
    tool: str
    met: bool | None
    measured: str


def locust_run(http: Results, mode: str, users: int) -> Run | None:
    """The successful Locust run of `mode` at `users`, if any."""
    runs = http["modes"].get(mode, {}).get("runs", [])
    return next((r for r in runs if r["users"] == users and "error" not in r), None)


def wrk_run(http: Results, mode: str) -> Run | None:
    run = http["modes"].get(mode, {}).get("wrk")
    return run if run else None


def ratio(a: Run | None, b: Run | None) -> float | None:
    return a["rps"] / b["rps"] if a and b and b["rps"] else None


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def batching_pairs(http: Results) -> list[tuple[str, int, Run, Run]]:
    """(engine, users, adaptive run, unbatched run) wherever both modes ran."""
    pairs = []
    for engine in ("onnx", "xgboost"):
        for users in http["users"]:
            batched = locust_run(http, f"{engine}-adaptive", users)
            plain = locust_run(http, f"{engine}-unbatched", users)
            if batched and plain:
                pairs.append((engine, users, batched, plain))
    return pairs


def _at_least(target: str, tool: str, value: float | None, floor: float, shown: str) -> Check:
    return Check(target, tool, None if value is None else value >= floor, shown)


def _at_most_ms(target: str, tool: str, run: Run | None, key: str, ceiling: float) -> Check:
    if run is None or key not in run:
        return Check(target, tool, None, "not measured")
    return Check(target, tool, run[key] <= ceiling, f"{run[key]:.1f} ms")


def _single_request_checks(http: Results) -> list[Check]:
    checks = []
    for tool, ours, base, flask in (
        (
            "Locust, 64 users",
            locust_run(http, OURS, 64),
            locust_run(http, BASELINE, 64),
            locust_run(http, FLASK, 64),
        ),
        ("wrk, 64 connections", wrk_run(http, OURS), wrk_run(http, BASELINE), wrk_run(http, FLASK)),
    ):
        if tool.startswith("wrk") and ours is None:
            continue  # wrk not installed: the Locust lines stand alone
        to_base, to_flask = ratio(ours, base), ratio(ours, flask)
        checks += [
            _at_least(
                "single /classify >= 5x the BentoML-user baseline", tool, to_base, 5, times(to_base)
            ),
            _at_least(
                "single /classify >= 1.5x tuned Flask + gunicorn",
                tool,
                to_flask,
                1.5,
                times(to_flask),
            ),
            _at_most_ms("single /classify p99 <= 25 ms", tool, ours, "p99_ms", 25),
        ]
    checks.append(
        _at_most_ms(
            "single /classify p99 <= 5 ms", "Locust, 1 user", locust_run(http, OURS, 1), "p99_ms", 5
        )
    )
    return checks


def _batching_checks(http: Results) -> list[Check]:
    pairs = batching_pairs(http)
    if pairs:
        engine, users, batched, plain = min(pairs, key=lambda p: p[2]["rps"] / p[3]["rps"])
        worst = batched["rps"] / plain["rps"]
        never_worse = Check(
            "adaptive batching never < 0.95x unbatched (any engine, any user count)",
            "Locust",
            worst >= 0.95,
            f"worst {worst:.2f}x ({engine}, {users} user{'s' if users != 1 else ''})",
        )
    else:
        never_worse = Check(
            "adaptive batching never < 0.95x unbatched", "Locust", None, "not measured"
        )
    checks = [never_worse]
    # Locust (~10k req/s from 2 processes here) can cap the faster server: wrk, when
    # installed, measures the same ratio with the server as the bottleneck.
    for tool, batched_run, plain_run in (
        ("Locust, 64 users", locust_run(http, "xgboost-adaptive", 64), locust_run(http, "xgboost-unbatched", 64)),
        ("wrk, 64 connections", wrk_run(http, "xgboost-adaptive"), wrk_run(http, "xgboost-unbatched")),
    ):  # fmt: skip
        if tool.startswith("wrk") and batched_run is None:
            continue
        native = ratio(batched_run, plain_run)
        checks.append(
            _at_least(
                "native XGBoost: adaptive >= 2x unbatched at 64 users",
                tool,
                native,
                2,
                times(native),
            )
        )
    return checks


def _bulk_checks(http: Results) -> list[Check]:
    bulk = http.get("bulk") or {}
    at_100k = [r for r in bulk.get("end_to_end", []) if r["rows"] == 100_000]
    e2e = max(at_100k, key=lambda r: r["rows_per_s"], default=None)  # the fastest body format
    engine = next((r for r in bulk.get("in_process", []) if r["rows"] == 100_000), None)
    rate = e2e["rows_per_s"] if e2e else None
    best = max(engine["onnx_rows_per_s"], engine["xgboost_rows_per_s"]) if engine else None
    share = rate / best if rate is not None and best else None
    return [
        _at_least(
            "bulk >= 1M rows/s end to end at 100k rows",
            f"httpx, 1 request at a time, {e2e.get('format', 'json')} body" if e2e else "httpx",
            rate,
            1e6,
            "not measured" if rate is None else f"{rate:,.0f} rows/s",
        ),
        _at_least(
            "bulk >= 50% of the best in-process engine at 100k rows",
            "httpx vs in-process",
            share,
            0.5,
            "not measured" if share is None else f"{share:.0%}",
        ),
    ]


def evaluate(http: Results) -> list[Check]:
    """Every target of issue 5, in the issue's order."""
    return [*_single_request_checks(http), *_batching_checks(http), *_bulk_checks(http)]
