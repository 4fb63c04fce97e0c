"""The lone-bulk-request section of bench/REPORT.md, from bench/results/bulk_lone.json
(`python -m bench.bulk lone`): a lone 100,000-row Arrow request end to end against in-process
native XGBoost on one thread, per round and the median (issue 27)."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "bulk_lone.json"
XGBOOST = "xgboost_1_thread"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def markdown(path: Path = RESULTS) -> list[str]:
    if not path.exists():
        return []
    data: dict[str, Any] = json.loads(path.read_text())
    machine, lone = data["machine"], data["lone"]
    rounds: list[dict[str, float]] = lone["rounds"]
    servers = list(lone["median_vs_xgboost"])
    lines = [
        "## A lone bulk request against the engine alone (issue 27)",
        "",
        f"`{data['command']}`, commit `{machine.get('commit', '?')}`, "
        f"{machine.get('started_utc', '?')} UTC, {machine.get('cores', '?')} cores, load average "
        f"at start {machine.get('load_average_at_start', '?')}; one {lone['rows']:,}-row Arrow "
        "request at a time (Arrow answer, checked) against native XGBoost `inplace_predict` on "
        "one thread in the benchmark's process over the same rows already encoded, alternating "
        f"rounds, each the median of {lone['repeats']} runs. Ratio: XGBoost's time over the "
        "request's (1 or more: the request end to end is at least as fast).",
        "",
    ]
    header = ["round", "XGBoost, 1 thread, rows/s"]
    for name in servers:
        header += [f"`{name}` rows/s", f"`{name}` ratio"]
    rows = []
    for number, entry in enumerate(rounds, start=1):
        row: list[object] = [number, f"{entry[f'{XGBOOST}_rows_per_s']:,.0f}"]
        for name in servers:
            row += [f"{entry[f'{name}_rows_per_s']:,.0f}", f"{entry[f'{name}_vs_xgboost']:.2f}"]
        rows.append(row)
    median: list[object] = ["median", ""]
    for name in servers:
        median += ["", f"**{lone['median_vs_xgboost'][name]:.2f}**"]
    rows.append(median)
    lines += _table(header, rows)
    met = lone["median_vs_xgboost"].get("ours", 0.0) >= 1.0
    lines += [
        "",
        f"Target (issue 27): the default server (`ours`) at least as fast as XGBoost on one "
        f"thread, median of the rounds' ratios: {'yes' if met else '**NO**'} "
        f"({lone['median_vs_xgboost'].get('ours', float('nan')):.2f}).",
    ]
    return lines
