"""The REPORT.md section and plot for bench/results/spark.json (python -m bench.spark)."""

import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLOT = "spark.png"


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "n/a"


def plot(data: dict[str, Any], path: Path) -> None:
    """Rows/s per size: job and no-op (cold and warm), engines alone, HTTP bulk."""
    figure, axis = plt.subplots(figsize=(9, 5))
    bars = [
        (
            "no-op pass, cold",
            lambda s: s["rows"] / _mean(s["cold"]["noop_s"]) if "cold" in s else 0,
        ),
        ("job, cold", lambda s: s["rows"] / _mean(s["cold"]["job_s"]) if "cold" in s else 0),
        ("no-op pass, warm", lambda s: s["rows"] / _mean(s["warm"]["noop_s"])),
        ("job, warm", lambda s: s["rows"] / _mean(s["warm"]["job_s"])),
        ("HTTP bulk (Arrow, 100k/request)", lambda s: s.get("http", {}).get("rows_per_s", 0)),
        ("engine alone, 1 thread", lambda s: s["engine"]["predict_rows_per_s"]),
    ]
    sizes = list(data["sizes"].values())
    width = 0.8 / len(bars)
    for i, (label, value) in enumerate(bars):
        xs = [j + (i - len(bars) / 2 + 0.5) * width for j in range(len(sizes))]
        axis.bar(xs, [value(s) for s in sizes], width, label=label)
    axis.set_xticks(range(len(sizes)), [f"{s['rows']:,} rows" for s in sizes])
    axis.set_yscale("log")
    axis.set_ylabel("rows/s (log scale)")
    axis.set_title("Spark scoring job vs Spark's own cost, the engine and HTTP bulk")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def section(results: Path, image_prefix: str) -> list[str]:
    """Markdown lines for the report; [] when the Spark benchmark has not been run."""
    source = results / "spark.json"
    if not source.exists():
        return []
    data = json.loads(source.read_text())
    plot(data, results / PLOT)
    machine = data["machine"]
    goal = data["goal_ratio"]
    lines = [
        "## Scoring a data lake: the Spark job (bench/spark.py)",
        "",
        f"`{data['command']}` on {machine['cores']} cores (load average at start "
        f"{machine['load_average_at_start'][0]:.2f}), commit `{machine['commit']}`, "
        f"{machine['started_utc']} UTC, {data['elapsed_s'] / 60:.1f} min in all; model "
        f"`{data['model']}`. JVM + Spark session start-up in the benchmark process: "
        f"**{data['jvm_start_s']:.1f} s**.",
        "",
        "The no-op pass is Spark's own cost (read Parquet, a Python `mapInArrow` that carries "
        "the columns and adds three constant ones, write Parquet). *Cold*: a fresh process "
        "each (`python -m bench.spark_noop` / `python -m jobs.score`), Python and JVM "
        "start-up included. *Warm*: one started session whose Python workers already ran "
        "both. Runs in ABBA order (no-op, job, job, no-op); seconds are means. Goal: job <= "
        f"{goal}x the no-op pass.",
        "",
        "| rows | phase | no-op pass s | job s | job / no-op | goal | job rows/s | "
        "Spark start-up s (no-op, job) |",
        "| ---: | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for size in data["sizes"].values():
        for phase in ("cold", "warm"):
            if phase not in size:
                continue
            run = size[phase]
            noop, job = _mean(run["noop_s"]), _mean(run["job_s"])
            starts = (
                f"{_mean(run['noop_spark_start_s']):.1f}, {_mean(run['job_spark_start_s']):.1f}"
                if "noop_spark_start_s" in run
                else "(started before)"
            )
            verdict = "met" if run["ratio"] <= goal else "**missed**"
            lines.append(
                f"| {size['rows']:,} | {phase} | {noop:.1f} | {job:.1f} | {run['ratio']:.2f} | "
                f"{verdict} | {_rate(size['rows'], job)} | {starts} |"
            )
    lines += [
        "",
        "| rows | engine alone (1 thread): encode s, predict s, rows/s | HTTP bulk: requests, "
        "s, rows/s | job's rejects |",
        "| ---: | --- | --- | ---: |",
    ]
    for size in data["sizes"].values():
        engine = size["engine"]
        http = size.get("http")
        http_cell = (
            f"{http['requests']} x 100k, {http['seconds']:.1f}, {http['rows_per_s']:,}"
            if http
            else "not run"
        )
        summary = size["warm"].get("job_summary", {})
        lines.append(
            f"| {size['rows']:,} | {engine['encode_s']:.2f}, {engine['predict_s']:.2f}, "
            f"{engine['predict_rows_per_s']:,} ({engine['rows']:,} rows) | {http_cell} | "
            f"{summary.get('rejected', 'n/a'):,} of {summary.get('rows_in', 0):,} |"
        )
    lines += [
        "",
        "Engine and HTTP figures use at most 2,000,000 valid rows of the lake (`--engine-rows`, "
        "`--http-rows`), so the 10,000,000 row line repeats them on 2M rows at a later, "
        "differently loaded moment of the run. The machine is shared: compare figures within a "
        "phase of one run, not across runs. The job can beat the no-op pass because its tasks "
        "write Parquet with pyarrow straight from Arrow (jobs/outputs.py), where the no-op "
        "pass, like any DataFrame write, converts Arrow back to Spark rows for Spark's Parquet "
        "writer.",
        "",
        f"![spark]({image_prefix}{PLOT})",
    ]
    return lines + cluster_lines(data.get("cluster_vs_local"))


def cluster_lines(run: dict[str, Any] | None) -> list[str]:
    """The local[2] vs standalone-cluster table (python -m bench.spark --cluster-vs-local)."""
    if not run:
        return []
    machine = run["machine"]
    lines = [
        "",
        "### The same input on local[2] and on a standalone cluster",
        "",
        f"`{run['command']}` on {machine['cores']} cores (load average at start "
        f"{machine['load_average_at_start'][0]:.2f}), commit `{machine['commit']}`, "
        f"{machine['started_utc']} UTC. {run['rows']:,} rows, {run['input']}; the cluster is a "
        "master and one worker of 2 cores on loopback (harness/spark_cluster.py). One warm "
        "session per master; *spread*: the job's default (repartitioned over the cores), "
        "*laid out*: `--keep-layout` (one task reads the one row group). ABBA order, means.",
        "",
        "| master | session start s | spread s (tasks) | laid out s (tasks) | spread / laid out |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in ("local", "cluster"):
        side = run[key]
        lines.append(
            f"| {side['master']} | {side['session_start_s']:.1f} | "
            f"{_mean(side['spread_s']):.1f} ({side['spread_summary']['tasks']}) | "
            f"{_mean(side['kept_s']):.1f} ({side['kept_summary']['tasks']}) | "
            f"{side['spread_over_kept']:.2f} |"
        )
    lines += ["", f"Cluster / local, spread passes: **{run['cluster_over_local']:.2f}**."]
    return lines
