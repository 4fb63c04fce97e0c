"""The capacity section of bench/REPORT.md and the sizing table of the README, from
bench/results/capacity.json (`python -m bench.capacity`).

    python -m bench.capacity_report     # prints the section (the README's table is in it)

Sizing model (the assumptions are printed with the table): a worker is one core; for a p99
budget, a worker's throughput is the best measured requests per CPU-second among the sweep
points whose p99 met the budget (measured with the load generator on the same cores, so the
latencies are pessimistic); replicas = ceil(target / (throughput x workers per pod)) + 1, the
extra replica for the one a rollout or a node drain takes away (maxUnavailable 0 surges instead,
the PodDisruptionBudget allows one down), never fewer than 2.
"""

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "capacity.json"
WORKERS_PER_POD = 2  # deploy/kubernetes/base/deployment.yaml
TARGETS_RPS = (1_000, 5_000, 20_000)
P99_BUDGETS_MS = (10.0, 50.0, 200.0)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def worker_rate(results: dict[str, Any], p99_budget_ms: float) -> float | None:
    """Requests per second one worker (one core) sustains within the p99 budget."""
    fitting = [
        run["rps_per_core"]
        for run in results["classify_one_worker"]
        if run.get("p99_ms", math.inf) <= p99_budget_ms
    ]
    return max(fitting) if fitting else None


def replicas(target_rps: float, rate: float, workers: int = WORKERS_PER_POD) -> int:
    return max(2, math.ceil(target_rps / (rate * workers)) + 1)


def sizing_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for budget in P99_BUDGETS_MS:
        rate = worker_rate(results, budget)
        cells = [str(replicas(target, rate)) if rate else "not met here" for target in TARGETS_RPS]
        rows.append([f"{budget:g} ms", f"{rate:,.0f}" if rate else "-", *cells])
    header = [
        "p99 budget",
        "req/s per core",
        *(f"pods for {t:,} req/s" for t in TARGETS_RPS),
    ]
    return _table(header, rows)


def section(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    load = machine.get("load_average_at_start", ["?"])[0]
    sweep = [
        (
            int(run["connections"]),
            f"{run['rps']:,.0f}",
            f"{run.get('p50_ms', 0):.1f}",
            f"{run.get('p99_ms', 0):.1f}",
            f"{run['server_cores']:.2f}",
            f"{run['rps_per_core']:,.0f}",
        )
        for run in results["classify_one_worker"]
    ]
    hop = results["hop"]
    one, two = hop["one_server_two_workers"], hop["two_replicas_behind_haproxy"]
    balancer_us = two["balancer_cores"] / two["rps"] * 1e6
    bulk = results["bulk_one_worker"]
    return [
        "## Capacity (Kubernetes sizing)",
        f"`python -m bench.capacity` on {machine['cpu']}, {machine['cores']} cores shared by "
        f"server, HAProxy and wrk (load average {load} at start), commit `{machine['commit']}`, "
        f"{results['seconds']} s per point. Per core = per CPU-second the server's processes "
        "used (psutil), so the figures do not depend on how much of the machine the server got.",
        "",
        "/classify, one server with one worker, wrk at each connection count:",
        "",
        *_table(
            ["connections", "req/s", "p50 ms", "p99 ms", "server cores", "req/s per core"], sweep
        ),
        "",
        f"Balancer hop at {int(one['connections'])} connections, same run: one server with two "
        "workers against two one-worker replicas behind HAProxy (one thread):",
        "",
        *_table(
            ["setup", "req/s", "p50 ms", "p99 ms", "server cores", "HAProxy cores"],
            [
                (
                    name,
                    f"{run['rps']:,.0f}",
                    f"{run.get('p50_ms', 0):.1f}",
                    f"{run.get('p99_ms', 0):.1f}",
                    f"{run['server_cores']:.2f}",
                    f"{run.get('balancer_cores', 0):.2f}",
                )
                for name, run in (("one server, 2 workers", one), ("2 replicas + HAProxy", two))
            ],
        ),
        "",
        f"HAProxy used {balancer_us:.0f} µs of CPU per request; throughput behind it was "
        f"{two['rps'] / one['rps']:.2f}x the single server's (on these shared cores its CPU "
        "comes out of the servers' share).",
        "",
        f"Bulk, Arrow IPC body of {bulk['rows']:,} rows, one request at a time, one worker "
        f"(CREDIT_RISK_BULK_THREADS=1): {bulk['rows_per_s']:,.0f} rows/s, "
        f"{bulk['rows_per_cpu_s']:,.0f} rows per CPU-second (median of 5).",
        "",
        f"Pods of {WORKERS_PER_POD} workers (deploy/kubernetes/base/deployment.yaml) for a target load "
        "and p99 budget (model in bench/capacity_report.py: per-core rate at the best sweep "
        "point within the budget, + 1 pod for a rollout or a drain, at least 2):",
        "",
        *sizing_table(results),
    ]


def markdown(path: Path = RESULTS) -> list[str]:
    """The section, or nothing when the capacity benchmark has not been run."""
    return section(json.loads(path.read_text())) if path.exists() else []


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print("\n".join(markdown(path)) or f"no {path}: run python -m bench.capacity")


if __name__ == "__main__":
    main()
