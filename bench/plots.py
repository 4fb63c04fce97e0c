"""PNG plots of one HTTP results file: throughput and latency vs users, bulk rows/s vs size."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

Results = dict[str, Any]
PERCENTILES = (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))
LATENCY_FLOOR_MS = 0.5


def _ok_runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for run in data.get("runs", []) if "error" not in run]


def _users_axis(axis: Axes, ylabel: str, users: list[int]) -> None:
    axis.set_xscale("log", base=2)
    axis.set_xticks(users, [str(n) for n in users])
    axis.set_xlabel("Locust users")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)


def throughput(http: Results, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 5))
    for mode, data in http["modes"].items():
        runs = _ok_runs(data)
        if runs:
            axis.plot([r["users"] for r in runs], [r["rps"] for r in runs], marker="o", label=mode)
    _users_axis(axis, "requests/s (single /classify)", http["users"])
    axis.set_title("Throughput vs users")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def latency(http: Results, path: Path) -> None:
    """One panel per percentile, log scale, every mode. Locust reports whole milliseconds
    below 100 ms, so a sub-millisecond 0 is drawn at the floor (0.5 ms) instead of vanishing."""
    figure, axes = plt.subplots(1, len(PERCENTILES), figsize=(15, 5), sharey=True)
    for axis, (key, label) in zip(axes, PERCENTILES, strict=True):
        for mode, data in http["modes"].items():
            runs = _ok_runs(data)
            if runs:
                values = [max(r[key], LATENCY_FLOOR_MS) for r in runs]
                axis.plot([r["users"] for r in runs], values, marker="o", label=mode)
        _users_axis(axis, "latency (ms)", http["users"])
        axis.set_yscale("log")
        axis.set_title(f"{label} latency vs users")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def bulk(http: Results, path: Path) -> bool:
    """Bulk rows/s by request size; False (no file) when the run measured no bulk scoring."""
    data = http.get("bulk") or {}
    if not data.get("end_to_end"):
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    e2e = data["end_to_end"]
    for body_format in dict.fromkeys(r.get("format", "json") for r in e2e):
        mine = [r for r in e2e if r.get("format", "json") == body_format]
        axis.plot(
            [r["rows"] for r in mine],
            [r["rows_per_s"] for r in mine],
            marker="o",
            label=f"HTTP end to end, {body_format} body",
        )
    for key, label, marker in (
        ("onnx_rows_per_s", "ONNX Runtime in-process", "s"),
        ("xgboost_rows_per_s", "XGBoost in-process", "^"),
    ):
        rows = data.get("in_process", [])
        axis.plot([r["rows"] for r in rows], [r[key] for r in rows], marker=marker, label=label)
    axis.axhline(1e6, color="grey", linestyle="--", linewidth=1, label="target: 1M rows/s")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("rows per request")
    axis.set_ylabel("rows/s")
    axis.set_title("Bulk scoring rows/s vs request size")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def draw_all(http: Results, directory: Path) -> list[Path]:
    """Every plot the results allow, as PNG files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    made = [directory / "throughput.png", directory / "latency.png"]
    throughput(http, made[0])
    latency(http, made[1])
    if bulk(http, directory / "bulk.png"):
        made.append(directory / "bulk.png")
    return made
