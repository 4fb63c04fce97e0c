"""The front-door section of bench/REPORT.md, from bench/results/front_door.json
(`python -m bench.front_door`): the HTTP-limit ratio and the 2,048-connection overload run,
each against issue 9's targets."""

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "front_door.json"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _yes(met: bool) -> str:
    return "yes" if met else "**NO**"


def _rounds(limit: dict[str, Any]) -> list[str]:
    """Each server's rate and p99 against the no-op app's in the same round, per round and
    their median, against issue 27's targets (rate at least 0.65, p99 at most 1.5x)."""
    noop = limit["noop-asgi"]["rounds"]
    header = ["server", *(f"round {i}" for i in range(1, len(noop) + 1)), "median"]
    rows = []
    for name, entry in limit.items():
        if name == "noop-asgi":
            continue
        rates = [r["rps"] / n["rps"] for r, n in zip(entry["rounds"], noop, strict=True)]
        p99s = [r["p99_ms"] / n["p99_ms"] for r, n in zip(entry["rounds"], noop, strict=True)]
        rows.append(
            [
                f"`{name}` rate / no-op",
                *(f"{x:.2f}" for x in rates),
                f"**{statistics.median(rates):.2f}**",
            ]
        )
        rows.append(
            [
                f"`{name}` p99 / no-op",
                *(f"{x:.2f}" for x in p99s),
                f"**{statistics.median(p99s):.2f}**",
            ]
        )
    return [
        "Per round, against the no-op app in the same round (issue 27's targets: rate at least "
        "0.65, p99 at most 1.5x, medians of the rounds):",
        "",
        *_table(header, rows),
    ]  # fmt: skip


def markdown(path: Path = RESULTS) -> list[str]:
    if not path.exists():
        return []
    data: dict[str, Any] = json.loads(path.read_text())
    machine = data["machine"]
    limit = data["limit"]
    ours = limit["ours"]
    lines = [
        "## Front door: the HTTP limit and overload (issue 9)",
        "",
        f"`python -m bench.front_door`, commit `{machine.get('commit', '?')}`, "
        f"{machine.get('started_utc', '?')} UTC, load average at start "
        f"{machine.get('load_average_at_start', '?')}; "
        f"wrk, {data.get('wrk_threads', 1)} thread(s), 64 connections, one applicant per request, "
        f"{data['seconds']} s per "
        f"run, targets in turn for {len(ours['rounds'])} rounds (median round shown).",
        "",
    ]
    rows = [
        [f"`{name}`", entry["description"], f"{entry['rps']:,.0f}", f"{entry['p99_ms']:.1f}",
         f"{entry['vs_noop']:.0%}"]
        for name, entry in limit.items()
    ]  # fmt: skip
    lines += _table(["server", "what", "req/s", "p99 ms", "vs no-op"], rows)
    lines += ["", *_rounds(limit)]
    runs = data["overload"]
    over = runs["ours"]
    probe, wrk = over["probe"], over["wrk"]
    after = over["one_request_after_ms"]
    lines += [
        "",
        f"Overload: {over['connections']:,} connections on /classify for {over['seconds']} s: "
        f"wrk floods {over['connections'] - probe['connections']:,} of them (2 threads, 5 s "
        f"timeout) while our raw-socket client samples the other {probe['connections']} "
        "(latency per status); the same flood on the no-op app, for comparison. `accept queue`: "
        "connections the kernel had established but no worker had yet accepted, halfway through.",
        "",
    ]
    rows = []
    for name, run in runs.items():
        flood, sample = run["wrk"], run["probe"]
        rows.append(
            [f"`{name}`", f"{flood['rps']:,.0f}",
             f"{1 - flood['non_2xx'] / max(flood['requests'], 1):.0%}",
             f"{flood.get('p50_ms', 0):.0f} / {flood.get('p99_ms', 0):.0f}",
             f"{flood['timeouts']:.0f}", f"{flood['socket_errors']:.0f}",
             f"{sample['admitted_share']:.0%}",
             f"{sample['admitted_p50_ms']:.0f} / {sample['admitted_p99_ms']:.0f}",
             f"{sample['refused_p99_ms']:.0f}", sample["timeouts"], sample["other_5xx"],
             run.get("accept_queue_midway", "")]
        )  # fmt: skip
    lines += _table(
        ["server", "flood answers/s", "flood 2xx", "flood p50 / p99 ms", "flood timeouts",
         "flood socket errors", "sample admitted", "admitted p50 / p99 ms", "refusal p99 ms",
         "sample timeouts", "other 5xx", "accept queue"],
        rows,
    )  # fmt: skip
    targets = [
        ["single /classify at 64 connections >= 50% of the no-op app", _yes(ours["vs_noop"] >= 0.5),
         f"{ours['vs_noop']:.0%}"],
        ["its p99 <= 10 ms", _yes(ours["p99_ms"] <= 10),
         f"{ours['p99_ms']:.1f} ms (the no-op app's: {limit['noop-asgi']['p99_ms']:.1f} ms)"],
        ["2,048 connections: 0 non-503/429 5xx", _yes(probe["other_5xx"] == 0),
         str(probe["other_5xx"])],
        ["0 client timeouts or socket errors (flood, incl. never-accepted connections / sample)",
         _yes(probe["timeouts"] + probe["socket_errors"] + wrk["socket_errors"] == 0),
         f"{wrk['socket_errors']:.0f} / {probe['timeouts'] + probe['socket_errors']}"],
        ["admitted requests' p99 <= 1 s", _yes(probe["admitted_p99_ms"] <= 1000),
         f"{probe['admitted_p99_ms']:.0f} ms"],
        ["one request right after < 100 ms (on a new connection, as soon as the flood ends)",
         _yes(after < 100), f"{after:.1f} ms"],
    ]  # fmt: skip
    lines += ["", *_table(["target (issue 9)", "met", "measured"], targets)]
    return lines


EXPLAIN_RESULTS = Path(__file__).parent / "results" / "explain_http.json"


def explain_markdown(path: Path = EXPLAIN_RESULTS) -> list[str]:
    """The /explain, monitoring-cost and bulk-reasons section (`python -m bench.explain_http`)."""
    if not path.exists():
        return []
    data: dict[str, Any] = json.loads(path.read_text())
    machine, http, ratios, bulk = data["machine"], data["http"], data["ratios"], data["bulk"]
    lines = [
        "## Explanations and decision monitoring over HTTP (issue 12)",
        "",
        f"`{data.get('command', 'python -m bench.explain_http')}`, commit "
        f"`{machine.get('commit', '?')}`, "
        f"{machine.get('started_utc', '?')} UTC, load average at start "
        f"{machine.get('load_average_at_start', '?')}; wrk, 64 connections, one applicant per "
        f"request, {data['seconds']} s per run, interleaved rounds (median round shown).",
        "",
    ]
    rounds = ratios.get("explain_vs_classify_rounds")
    if rounds:  # issue 27: each round's /explain over its /classify, and their median
        lines += _table(
            ["round", *(str(n) for n in range(1, len(rounds) + 1)), "median"],
            [["/explain / /classify req/s", *(f"{r:.2f}" for r in rounds),
              f"{ratios['explain_vs_classify']:.2f}"]],
        )  # fmt: skip
        lines.append("")
    lines += _table(
        ["run", "req/s", "p99 ms"],
        [
            ["/classify, default server", f"{http['classify']['rps']:,.0f}",
             f"{http['classify']['p99_ms']:.1f}"],
            ["/explain, same server", f"{http['explain']['rps']:,.0f}",
             f"{http['explain']['p99_ms']:.1f}"],
            ["/classify, CREDIT_RISK_MONITORING=false", f"{http['unmonitored']['rps']:,.0f}",
             f"{http['unmonitored']['p99_ms']:.1f}"],
        ],
    )  # fmt: skip
    lines += ["", *_table(["bulk, 100,000-row Arrow requests", "rows/s"],
                          [[name, f"{value:,.0f}"] for name, value in bulk.items()])]  # fmt: skip
    targets = [
        ["/explain >= 75% of /classify's throughput (issue 27; median of the rounds' ratios)",
         _yes(ratios["explain_vs_classify"] >= 0.75), f"{ratios['explain_vs_classify']:.0%}"],
        ["/explain p99 <= 25 ms", _yes(http["explain"]["p99_ms"] <= 25),
         f"{http['explain']['p99_ms']:.1f} ms"],
        ["decision monitoring costs <= 5% of /classify throughput",
         _yes(ratios["monitoring_cost"] <= 0.05), f"{ratios['monitoring_cost']:.1%}"],
        ["bulk with 4 reason columns, rows/s against without", "-",
         f"{ratios['bulk_reasons_vs_plain']:.0%}"],
    ]  # fmt: skip
    lines += ["", *_table(["target (issue 12)", "met", "measured"], targets)]
    return lines
