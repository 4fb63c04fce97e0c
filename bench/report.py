"""Turns bench/results/*.json into bench/REPORT.md and PNG plots.

python -m bench.report
"""

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
BASELINE = "bentoml-user-baseline"
FLASK = "flask-gunicorn"


def _run(http: dict[str, Any], mode: str, users: int) -> dict[str, float] | None:
    runs = http["modes"].get(mode, {}).get("runs", [])
    return next((r for r in runs if r["users"] == users), None)


def _ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> str:
    return f"{a['rps'] / b['rps']:.2f}x" if a and b and b["rps"] else "n/a"


def single_table(http: dict[str, Any]) -> list[str]:
    lines = [
        "| mode | users | req/s | p50 ms | p95 ms | p99 ms | failures | vs BentoML-user baseline | vs Flask+gunicorn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in http["modes"]:
        for run in http["modes"][mode]["runs"]:
            users = run["users"]
            lines.append(
                f"| {mode} | {users} | {run['rps']:,.0f} | {run['p50_ms']:.0f} | {run['p95_ms']:.0f} | "
                f"{run['p99_ms']:.0f} | {run['failures']} | {_ratio(run, _run(http, BASELINE, users))} | "
                f"{_ratio(run, _run(http, FLASK, users))} |"
            )
    return lines


def wrk_table(http: dict[str, Any]) -> list[str]:
    rows = [(mode, data["wrk"]) for mode, data in http["modes"].items() if data.get("wrk")]
    if not rows:
        return ["(wrk not installed: `apt-get install wrk` adds this table)"]
    base = dict(rows).get(BASELINE)
    flask = dict(rows).get(FLASK)
    lines = [
        "| mode | req/s | p50 ms | p99 ms | non-2xx | vs BentoML-user baseline | vs Flask+gunicorn |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, run in rows:
        lines.append(
            f"| {mode} | {run['rps']:,.0f} | {run.get('p50_ms', 0):.1f} | {run.get('p99_ms', 0):.1f} | {run['non_2xx']:.0f} | "
            f"{_ratio(run, base)} | {_ratio(run, flask)} |"
        )
    return lines


def batching_pairs(
    http: dict[str, Any],
) -> list[tuple[str, int, dict[str, float], dict[str, float]]]:
    """(engine, users, adaptive run, unbatched run) wherever both modes ran."""
    pairs = []
    for engine in ("onnx", "xgboost"):
        for users in http["users"]:
            batched = _run(http, f"{engine}-adaptive", users)
            plain = _run(http, f"{engine}-unbatched", users)
            if batched and plain:
                pairs.append((engine, users, batched, plain))
    return pairs


def batching_table(http: dict[str, Any]) -> list[str]:
    lines = [
        "| engine | users | adaptive req/s | unbatched req/s | adaptive / unbatched |",
        "|---|---:|---:|---:|---:|",
    ]
    for engine, users, batched, plain in batching_pairs(http):
        lines.append(
            f"| {engine} | {users} | {batched['rps']:,.0f} | {plain['rps']:,.0f} | {_ratio(batched, plain)} |"
        )
    return lines


def bulk_table(http: dict[str, Any]) -> list[str]:
    bulk = http.get("bulk") or {}
    lines = [
        "| rows | end to end rows/s | ONNX Runtime rows/s (in-process) | XGBoost rows/s (in-process) | end to end / best engine |",
        "|---:|---:|---:|---:|---:|",
    ]
    for e2e, engine in zip(bulk.get("end_to_end", []), bulk.get("in_process", []), strict=False):
        best = max(engine["onnx_rows_per_s"], engine["xgboost_rows_per_s"])
        lines.append(
            f"| {e2e['rows']:,} | {e2e['rows_per_s']:,.0f} | {engine['onnx_rows_per_s']:,.0f} | "
            f"{engine['xgboost_rows_per_s']:,.0f} | {e2e['rows_per_s'] / best:.0%} |"
        )
    return lines


def inprocess_table(data: dict[str, Any]) -> list[str]:
    lines = ["| benchmark | mean µs | rows/s |", "|---|---:|---:|"]
    for bench in data.get("benchmarks", []):
        mean_us = bench["stats"]["mean"] * 1e6
        rows = bench.get("extra_info", {}).get("rows")
        rate = f"{rows / bench['stats']['mean']:,.0f}" if rows else ""
        lines.append(f"| {bench['name']} | {mean_us:,.1f} | {rate} |")
    return lines


def targets(http: dict[str, Any]) -> list[str]:
    ours64, base64, flask64 = (
        _run(http, "onnx-adaptive", 64),
        _run(http, BASELINE, 64),
        _run(http, FLASK, 64),
    )
    ours1 = _run(http, "onnx-adaptive", 1)
    checks: list[tuple[str, bool | None, str]] = []
    if ours64 and base64:
        checks.append(
            (
                ">= 5x the BentoML-user baseline at 64 users",
                ours64["rps"] >= 5 * base64["rps"],
                _ratio(ours64, base64),
            )
        )
    if ours64 and flask64:
        checks.append(
            (
                ">= 1.5x Flask+gunicorn at 64 users",
                ours64["rps"] >= 1.5 * flask64["rps"],
                _ratio(ours64, flask64),
            )
        )
    if ours64:
        checks.append(
            ("p99 <= 25 ms at 64 users", ours64["p99_ms"] <= 25, f"{ours64['p99_ms']:.0f} ms")
        )
    wrk = {mode: data.get("wrk") for mode, data in http["modes"].items()}
    ours_wrk, base_wrk, flask_wrk = wrk.get("onnx-adaptive"), wrk.get(BASELINE), wrk.get(FLASK)
    if ours_wrk and base_wrk and flask_wrk:
        checks.append(
            (
                "wrk, 64 connections: >= 5x the BentoML-user baseline",
                ours_wrk["rps"] >= 5 * base_wrk["rps"],
                _ratio(ours_wrk, base_wrk),
            )
        )
        checks.append(
            (
                "wrk, 64 connections: >= 1.5x Flask+gunicorn",
                ours_wrk["rps"] >= 1.5 * flask_wrk["rps"],
                _ratio(ours_wrk, flask_wrk),
            )
        )
        checks.append(
            (
                "wrk, 64 connections: p99 <= 25 ms",
                ours_wrk["p99_ms"] <= 25,
                f"{ours_wrk['p99_ms']:.1f} ms",
            )
        )
    if ours1:
        checks.append(("p99 <= 5 ms at 1 user", ours1["p99_ms"] <= 5, f"{ours1['p99_ms']:.0f} ms"))
    ratios = [batched["rps"] / plain["rps"] for _, _, batched, plain in batching_pairs(http)]
    if ratios:
        worst = min(ratios)
        checks.append(("adaptive never < 0.95x unbatched", worst >= 0.95, f"worst {worst:.2f}x"))
    xa, xu = _run(http, "xgboost-adaptive", 64), _run(http, "xgboost-unbatched", 64)
    if xa and xu:
        checks.append(
            (
                ">= 2x unbatched for native XGBoost at 64 users",
                xa["rps"] >= 2 * xu["rps"],
                _ratio(xa, xu),
            )
        )
    bulk = http.get("bulk") or {}
    if bulk.get("end_to_end"):
        e2e, engine = bulk["end_to_end"][-1], bulk["in_process"][-1]
        best = max(engine["onnx_rows_per_s"], engine["xgboost_rows_per_s"])
        checks.append(
            (
                ">= 1M rows/s bulk end to end at 100k rows",
                e2e["rows_per_s"] >= 1e6,
                f"{e2e['rows_per_s']:,.0f}",
            )
        )
        checks.append(
            (
                ">= 50% of the best engine's rows/s at 100k rows",
                e2e["rows_per_s"] >= 0.5 * best,
                f"{e2e['rows_per_s'] / best:.0%}",
            )
        )
    lines = ["| target | met | measured |", "|---|---|---|"]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {value} |" for name, ok, value in checks]
    return lines


def plots(http: dict[str, Any]) -> list[str]:
    made = []
    for metric, label, filename in (
        ("rps", "requests/s", "throughput.png"),
        ("p99_ms", "p99 latency (ms)", "latency_p99.png"),
    ):
        figure, axis = plt.subplots(figsize=(8, 5))
        for mode, data in http["modes"].items():
            runs = data["runs"]
            axis.plot([r["users"] for r in runs], [r[metric] for r in runs], marker="o", label=mode)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("Locust users")
        axis.set_ylabel(label)
        if metric == "p99_ms":
            axis.set_yscale("log")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(RESULTS / filename, dpi=100)
        plt.close(figure)
        made.append(filename)
    bulk = http.get("bulk") or {}
    if bulk.get("end_to_end"):
        figure, axis = plt.subplots(figsize=(8, 5))
        sizes = [e["rows"] for e in bulk["end_to_end"]]
        axis.plot(
            sizes,
            [e["rows_per_s"] for e in bulk["end_to_end"]],
            marker="o",
            label="HTTP end to end (JSON columns)",
        )
        axis.plot(
            sizes,
            [e["onnx_rows_per_s"] for e in bulk["in_process"]],
            marker="s",
            label="ONNX Runtime in-process",
        )
        axis.plot(
            sizes,
            [e["xgboost_rows_per_s"] for e in bulk["in_process"]],
            marker="^",
            label="XGBoost in-process",
        )
        axis.set_xscale("log")
        axis.set_xlabel("rows per request")
        axis.set_ylabel("rows/s")
        axis.legend()
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(RESULTS / "bulk.png", dpi=100)
        plt.close(figure)
        made.append("bulk.png")
    return made


def main() -> None:
    http = json.loads((RESULTS / "http.json").read_text())
    inprocess_path = RESULTS / "inprocess.json"
    inprocess = json.loads(inprocess_path.read_text()) if inprocess_path.exists() else {}
    images = plots(http)
    m = http["machine"]
    text = [
        "# Benchmark report",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (server and load generator share them), Python {m['python']}; "
        f"commit `{m['commit']}`. Locust FastHttpUser, headless, loopback, {http['seconds']} s per user count "
        "(2 Locust processes from 16 users). Numbers are noisy on this shared machine: read ratios within one run.",
        "",
        "Reproduce: `python -m bench.http && python -m bench.report` (HTTP, ~8 min) and "
        "`pytest bench/ --benchmark-only` (in-process, ~2 min).",
        "",
        "## Targets",
        *targets(http),
        "",
        "## Single `/classify` requests",
        *single_table(http),
        "",
        "## Single `/classify` at 64 connections, wrk (C load generator, 1 thread)",
        "Locust (Python) needs most of a core per ~2,000 req/s here, so above that it measures itself; wrk shows the server.",
        "",
        *wrk_table(http),
        "",
        "## Adaptive batching vs unbatched",
        *batching_table(http),
        "",
        "## Bulk scoring (`/classify_bulk`, column-wise JSON, default server)",
        *bulk_table(http),
        "",
        *[f"![{name}](results/{name})" for name in images],
        "",
        "## In-process (pytest-benchmark)",
        *inprocess_table(inprocess),
        "",
    ]
    notes = BENCH / "REPORT_NOTES.md"
    if notes.exists():
        text += ["## Reading these numbers", "", notes.read_text()]
    (BENCH / "REPORT.md").write_text("\n".join(text))
    print(f"wrote {BENCH / 'REPORT.md'}")


if __name__ == "__main__":
    main()
