"""Turns the benchmark JSON into a Markdown report with tables, targets and PNG plots.

python -m bench.report                               # bench/results/ -> bench/REPORT.md
python -m bench.report --results bench/results/quick # a --quick run -> results/quick/REPORT.md
"""

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import bulk_report, capacity_report, front_door_report, plots, spark_report
from bench.modes import BASELINE, FLASK, OURS
from bench.targets import Results, batching_pairs, evaluate, locust_run, ratio, times, wrk_run

BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
NOTES = BENCH / "REPORT_NOTES.md"
MAIN_USERS = 64


def _table(header: Sequence[str], align: str, rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; `align` has one character per column, l or r."""
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _ms(value: float | None) -> str:
    """Milliseconds; Locust's 0 (whole ms) is shown as <1."""
    if value is None:
        return "n/a"
    if value == 0:
        return "<1"
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def header(http: Results, inprocess: dict[str, Any]) -> list[str]:
    machine = http["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    load = machine.get("load_average_at_start")
    lines = [
        "# Benchmark report",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, shared by the server and the load "
        "generator" + (f"; load average at start {load[0]:.2f}" if load else "") + ".",
        f"- Commit: `{machine['commit']}`"
        + (f", run started {machine['started_utc']} UTC" if "started_utc" in machine else "")
        + (f", took {http['elapsed_s'] / 60:.1f} min" if "elapsed_s" in http else "")
        + ".",
        f"- Python {machine['python']}" + (f"; {packages}" if packages else "") + ".",
        f"- Locust FastHttpUser, headless, loopback only, {http['seconds']} s per point after ramp-up, "
        f"{http.get('locust_processes', 2)} Locust processes from 16 users; wrk: 1 thread, "
        f"64 connections, distinct applicants, same duration. Locust's percentiles are whole "
        "milliseconds below 100 ms (0 means under 1 ms), 10 ms steps up to 1 s.",
    ]
    if inprocess:
        commit = inprocess.get("commit_info", {})
        lines.append(
            f"- In-process suite: commit `{str(commit.get('id', '?'))[:7]}"
            f"{'+dirty' if commit.get('dirty') else ''}`, {inprocess.get('datetime', '?')[:19]}."
        )
    if http.get("quick"):
        lines += [
            "",
            "> **Quick run** (`--quick`: fewer user counts, short runs): for checking the suite, "
            "not for conclusions.",
        ]
    return [
        *lines,
        "",
        "All servers run 2 worker processes and score the same exported model. Server and load "
        "generator share the cores, so absolute numbers are low and noisy; compare ratios "
        "within one run.",
    ]


def reproduce() -> list[str]:
    return [
        "## Reproduce",
        "```bash",
        ".venv/bin/python -m bench.http          # every default mode x 1/16/64/256 users (~12 min)",
        ".venv/bin/pytest bench/ --benchmark-only  # in-process suite (~1 min)",
        ".venv/bin/python -m bench.client_bench  # the Python client's score_table on 1M rows (~5 min)",
        ".venv/bin/python -m bench.report        # this file and the plots",
        "# development: --quick (users 1 and 64, 5 s; results in bench/results/quick/),",
        "# --modes onnx-adaptive,flask-gunicorn, --users 64, --seconds 30, --no-wrk, --no-bulk",
        ".venv/bin/python -m bench.http --quick && .venv/bin/python -m bench.report --results bench/results/quick",
        "```",
    ]


def targets_section(http: Results) -> list[str]:
    rows = [
        (c.target, c.tool, {True: "yes", False: "**NO**", None: "not measured"}[c.met], c.measured)
        for c in evaluate(http)
    ]
    return [
        "## Targets (issue 5)",
        f"For the default server (`{OURS}`); ratios against servers measured in this same run.",
        "",
        *_table(("target", "measured with", "met", "measured"), "llll", rows),
    ]


def _vs(run: dict[str, Any], http: Results, users: int) -> tuple[str, str]:
    return (
        times(ratio(run, locust_run(http, BASELINE, users))),
        times(ratio(run, locust_run(http, FLASK, users))),
    )


def main_table(http: Results) -> list[str]:
    rows = []
    for mode in http["modes"]:
        run = locust_run(http, mode, MAIN_USERS)
        if run:
            rows.append(
                (
                    f"`{mode}`",
                    f"{run['rps']:,.0f}",
                    _ms(run["p50_ms"]),
                    _ms(run["p95_ms"]),
                    _ms(run["p99_ms"]),
                    run["failures"],
                    *_vs(run, http, MAIN_USERS),
                )
            )
    if not rows:
        return []
    return [
        f"## Main table: single `/classify` at {MAIN_USERS} Locust users",
        *_table(
            (
                "mode",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "failures",
                "vs BentoML-user baseline",
                "vs Flask + gunicorn",
            ),
            "lrrrrrrr",
            rows,
        ),
    ]


def single_table(http: Results) -> list[str]:
    rows = []
    for mode, data in http["modes"].items():
        for run in data.get("runs", []):
            if "error" in run:
                rows.append((f"`{mode}`", run["users"], "failed", "", "", "", "", "", ""))
                continue
            rows.append(
                (
                    f"`{mode}`",
                    run["users"],
                    f"{run['rps']:,.0f}",
                    _ms(run["p50_ms"]),
                    _ms(run["p95_ms"]),
                    _ms(run["p99_ms"]),
                    run["failures"],
                    *_vs(run, http, run["users"]),
                )
            )
    modes = [
        f"- `{mode}`: {data['description']}"
        + (f" ({', '.join(f'{k}={v}' for k, v in data['env'].items())})" if data.get("env") else "")
        for mode, data in http["modes"].items()
    ]
    return [
        "## Single `/classify` requests, every mode and user count (Locust)",
        *modes,
        "",
        *_table(
            (
                "mode",
                "users",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "failures",
                "vs BentoML-user baseline",
                "vs Flask + gunicorn",
            ),
            "lrrrrrrrr",
            rows,
        ),
    ]


def wrk_table(http: Results) -> list[str]:
    rows = []
    base, flask = wrk_run(http, BASELINE), wrk_run(http, FLASK)
    for mode in http["modes"]:
        run = wrk_run(http, mode)
        if run:
            rows.append(
                (
                    f"`{mode}`",
                    f"{run['rps']:,.0f}",
                    _ms(run.get("p50_ms")),
                    _ms(run.get("p99_ms")),
                    f"{run['non_2xx']:.0f}",
                    times(ratio(run, base)),
                    times(ratio(run, flask)),
                )
            )
    if not rows:
        return ["## Single `/classify`, wrk", "(wrk not installed: `apt-get install wrk` adds it)"]
    return [
        "## Single `/classify` at 64 connections, wrk",
        "Locust (Python) spends most of a core per ~2,000 req/s here, so above that it measures "
        "itself as much as the server; wrk (C) needs far less CPU per request.",
        "",
        *_table(
            (
                "mode",
                "req/s",
                "p50 ms",
                "p99 ms",
                "non-2xx",
                "vs BentoML-user baseline",
                "vs Flask + gunicorn",
            ),
            "lrrrrrr",
            rows,
        ),
    ]


def batching_table(http: Results) -> list[str]:
    rows = [
        (
            engine,
            users,
            f"{batched['rps']:,.0f}",
            f"{plain['rps']:,.0f}",
            times(ratio(batched, plain)),
            _ms(batched["p99_ms"]),
            _ms(plain["p99_ms"]),
        )
        for engine, users, batched, plain in batching_pairs(http)
    ]
    if not rows:
        return []
    return [
        "## Adaptive batching vs unbatched (Locust)",
        *_table(
            (
                "engine",
                "users",
                "adaptive req/s",
                "unbatched req/s",
                "adaptive / unbatched",
                "adaptive p99 ms",
                "unbatched p99 ms",
            ),
            "lrrrrrr",
            rows,
        ),
    ]


def bulk_section(http: Results) -> list[str]:
    bulk = http.get("bulk") or {}
    if not bulk.get("end_to_end"):
        return []
    engines = {row["rows"]: row for row in bulk.get("in_process", [])}
    rows = []
    for e2e in bulk["end_to_end"]:
        engine = engines.get(e2e["rows"])
        best = max(engine["onnx_rows_per_s"], engine["xgboost_rows_per_s"]) if engine else None
        rows.append(
            (
                f"{e2e['rows']:,}",
                e2e.get("format", "json"),
                f"{e2e.get('body_bytes', 0) / 2**20:,.1f}",
                f"{e2e['seconds'] * 1000:,.1f}",
                f"{e2e['rows_per_s']:,.0f}",
                f"{engine['onnx_rows_per_s']:,.0f}" if engine else "n/a",
                f"{engine['xgboost_rows_per_s']:,.0f}" if engine else "n/a",
                f"{e2e['rows_per_s'] / best:.0%}" if best else "n/a",
            )
        )
    rows.sort(key=lambda row: (int(row[0].replace(",", "")), row[1]))
    info = (http["modes"].get(OURS) or {}).get("info") or {}
    lines = [
        f"## Bulk scoring (`/classify_bulk`, `{OURS}` server)",
        "One request at a time on a kept-alive connection (httpx, median of the repeats), per "
        "body format (column-wise JSON, CSV, Arrow IPC stream; JSON answers, Arrow answers for "
        "Arrow bodies), beside each engine alone "
        "in-process on the same rows, already encoded (one thread, best of 5).",
        "",
        *_table(
            (
                "rows",
                "body",
                "MiB",
                "ms per request",
                "end to end rows/s",
                "ONNX Runtime rows/s (in-process)",
                "XGBoost rows/s (in-process)",
                "end to end / best engine",
            ),
            "rlrrrrrr",
            rows,
        ),
    ]
    concurrent = bulk.get("concurrent")
    if concurrent:
        lines += [
            "",
            f"Concurrent (Locust BulkUser, {concurrent['users']} users, {concurrent['rows']:,} rows "
            f"per request): {concurrent['rows_per_s']:,.0f} rows/s, p50 {_ms(concurrent['p50_ms'])} ms, "
            f"p99 {_ms(concurrent['p99_ms'])} ms, {concurrent['failures']} failures.",
        ]
    if info:
        lines += [
            "",
            f"Engine routing (GET /info): single and batch requests use `{info.get('engine')}`, bulk "
            f"uses `bulk_engine={info.get('bulk_engine')}` (`auto`: ONNX Runtime for small chunks, "
            "native XGBoost for large ones, where it is the faster engine; see the in-process "
            f"model-call table), with {(info.get('bulk') or {}).get('threads', 1)} engine "
            "thread(s) per bulk request.",
        ]
    return lines


def client_section(client: dict[str, Any]) -> list[str]:
    """`python -m bench.client_bench`: score_table on 1M rows against the single-request figure."""
    runs = client.get("runs") or {}
    single = (runs.get("single") or {}).get("median_rows_per_s")
    if not runs or not single:
        return []
    defaults = client.get("defaults", {})
    rows = []
    for name, run in runs.items():
        setting = (run.get("chunk_rows"), run.get("concurrency"))
        default = setting == (defaults.get("chunk_rows"), defaults.get("concurrency"))
        rates = run["rows_per_s"]
        rows.append(
            (
                run.get("input", name),
                f"{run['chunk_rows']:,}" if "chunk_rows" in run else "100,000",
                run.get("concurrency", 1),
                f"{run['median_rows_per_s']:,.0f}" + (" (defaults)" if default else ""),
                f"{min(rates):,.0f}-{max(rates):,.0f}",
                f"{run['median_rows_per_s'] / single:.2f}x",
            )
        )
    machine = client.get("machine", {})
    load = machine.get("load_average_at_start")
    return [
        f"## Bulk client (`client.CreditRiskClient.score_table`, {client['rows']:,} rows)",
        f"`{client.get('command', 'python -m bench.client_bench')}`: the default server, "
        f"{client.get('rounds', 1)} interleaved round(s), commit `{machine.get('commit', '?')}`"
        + (f", load average at start {load[0]:.2f}" if load else "")
        + ". Single: one pre-serialised 100,000-row Arrow request at a time (median of 5); "
        "score_table: wall time from the call to the aligned result (bodies built, answers read, "
        "an id column carried), chunks sent `concurrency` at a time; the CLI's rows/s is its own "
        "summary's (Parquet in, Parquet out). A separate run from the tables above (another "
        "time, other load): compare within this table.",
        "",
        *_table(
            ("input", "rows per request", "concurrency", "rows/s (median)", "range", "vs single"),
            "lrrrrr",
            rows,
        ),
    ]


def _label(bench: dict[str, Any]) -> str:
    extra = bench.get("extra_info", {})
    return str(extra.get("engine") or extra.get("encoder") or extra.get("path") or bench["name"])


def inprocess_section(data: dict[str, Any], source: Path) -> list[str]:
    benches = data.get("benchmarks", [])
    if not benches:
        return [
            "## In-process (pytest-benchmark)",
            "(no in-process results: run `pytest bench/ --benchmark-only`)",
        ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for bench in benches:
        groups.setdefault(bench.get("group") or "", []).append(bench)
    rows = []
    for group, members in groups.items():
        fastest = min(b["stats"]["median"] for b in members)
        for bench in sorted(members, key=lambda b: b["stats"]["median"]):
            stats, count = bench["stats"], bench.get("extra_info", {}).get("rows")
            rows.append(
                (
                    group,
                    _label(bench),
                    f"{stats['median'] * 1e6:,.1f}",
                    f"{stats['mean'] * 1e6:,.1f}",
                    f"{count / stats['median']:,.0f}" if count else "",
                    f"{stats['median'] / fastest:.2f}x",
                )
            )
    return [
        "## In-process (pytest-benchmark)",
        f"One thread per engine; median and mean time per call; from `{source.name}`.",
        "",
        *_table(
            ("group", "variant", "median µs", "mean µs", "rows/s (median)", "vs fastest in group"),
            "llrrrr",
            rows,
        ),
    ]


def failures_section(http: Results) -> list[str]:
    lines = []
    for mode, data in http["modes"].items():
        if "error" in data:
            lines.append(f"- `{mode}`: {data['error'].splitlines()[0]}")
        lines += [
            f"- `{mode}` at {run['users']} users: {run['error'].splitlines()[0]}"
            for run in data.get("runs", [])
            if "error" in run
        ]
    return ["## Failed runs", *lines] if lines else []


def build(
    http: Results,
    inprocess: dict[str, Any],
    inprocess_path: Path,
    images: Sequence[str],
    client: dict[str, Any] | None = None,
    capacity: Sequence[str] = (),
) -> str:
    sections = [
        header(http, inprocess),
        reproduce(),
        targets_section(http),
        front_door_report.markdown(),
        front_door_report.explain_markdown(),
        bulk_report.markdown(),
        main_table(http),
        single_table(http),
        wrk_table(http),
        batching_table(http),
        bulk_section(http),
        client_section(client or {}),
        [f"![{Path(image).stem}]({image})" for image in images],
        inprocess_section(inprocess, inprocess_path),
        failures_section(http),
        capacity,  # bench/capacity_report.py, when `python -m bench.capacity` has run
    ]
    if NOTES.exists():
        sections.append(
            [
                "## Notes (hand-written, from earlier runs; not regenerated)",
                "",
                NOTES.read_text().strip(),
            ]
        )
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder with http.json (plots go there too)"
    )
    parser.add_argument(
        "--inprocess",
        type=Path,
        help="pytest-benchmark JSON (default: the results folder's, else bench/results/)",
    )
    parser.add_argument(
        "--out", type=Path, help="report path (default bench/REPORT.md, or REPORT.md in --results)"
    )
    args = parser.parse_args(argv)
    results: Path = args.results
    out: Path = args.out or (
        BENCH / "REPORT.md" if results.resolve() == RESULTS.resolve() else results / "REPORT.md"
    )
    inprocess_path: Path = args.inprocess or next(
        (p for p in (results / "inprocess.json", RESULTS / "inprocess.json") if p.exists()),
        results / "inprocess.json",
    )
    http = json.loads((results / "http.json").read_text())
    inprocess = json.loads(inprocess_path.read_text()) if inprocess_path.exists() else {}
    client_path = results / "client.json"
    client = json.loads(client_path.read_text()) if client_path.exists() else {}
    images = [os.path.relpath(path, out.parent) for path in plots.draw_all(http, results)]
    capacity = capacity_report.markdown(results / "capacity.json")
    text = build(http, inprocess, inprocess_path, images, client, capacity)
    spark = spark_report.section(results, os.path.relpath(results, out.parent) + "/")
    out.write_text(text + "\n" + "\n".join(spark) + "\n" if spark else text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
