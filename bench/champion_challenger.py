"""What a challenger costs on /classify (issue 24): three servers, each 2 workers on the same
two models, the champion alone, with the challenger in shadow mode (it scores every applicant
off the response path), and in canary mode (it answers 5% of the applicants); alternating wrk
rounds of one-applicant requests on 64 connections (each round starts with another case), each
case's rate against the champion alone's in the same round, median of those ratios. Besides the
rate, the CPU time the server's processes spent per request (psutil): the cost itself, less
swayed than a rate by what else runs on the machine.

    python -m bench.champion_challenger                       # ~2 min
    python -m bench.champion_challenger --seconds 5 --rounds 2
    python -m bench.champion_challenger --routing-only        # and a fourth server, below
    python -m bench.champion_challenger --control             # and a second champion alone

`--routing-only` adds a canary whose fraction (1e-12) sends nobody to the challenger: every
single request is routed by its share, and no challenger call is made. Its cost against the
5% canary's splits what deciding per applicant costs from what the challenger's calls cost.
`--control` adds a second server identical to the champion alone (an A/A pair): its ratio is
what the bench reads where nothing differs, the resolution of every other ratio in the run.

Targets (issue 24): shadow at least 0.85x and canary at least 0.97x the champion alone.
Servers and load generator share the machine's cores: compare within one run.
"""

import argparse
import json
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.capacity import cpu_seconds
from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.process import ServedProcess, served

RESULTS = Path(__file__).parent / "results" / "champion_challenger.json"
CONNECTIONS = 64
CANARY_FRACTION = 0.05
ROUTING_ONLY_FRACTION = 1e-12  # a share below it: about one applicant in 10^12
TWO_CALLS = "canary, two calls"
TARGETS = {"shadow": 0.85, "canary": 0.97}  # of the champion alone's throughput


@contextmanager
def _servers(
    champion: str,
    challenger: str,
    workdir: Path,
    routing_only: bool,
    control: bool = False,
    two_calls: bool = False,
) -> Iterator[dict[str, ServedProcess]]:
    files = {
        "champion alone": f"champion {champion}\n",
        "shadow": f"champion {champion}\nchallenger {challenger}\nmode shadow\n",
        "canary": f"champion {champion}\nchallenger {challenger}\nmode canary\n"
        f"canary_fraction {CANARY_FRACTION}\n",
    }
    if control:
        files["champion alone, again"] = files["champion alone"]
    if routing_only:
        files["canary, routing only"] = (
            f"champion {champion}\nchallenger {challenger}\nmode canary\n"
            f"canary_fraction {ROUTING_ONLY_FRACTION}\n"
        )
    if two_calls:  # the canary without its joined session (service/settings.py)
        files[TWO_CALLS] = files["canary"]
    with ExitStack() as stack:
        servers = {}
        for name, text in files.items():
            path = workdir / f"models-{_slug(name)}"
            path.write_text(text)
            env = {"CREDIT_RISK_MODEL_TAG": champion, "CREDIT_RISK_MODELS_FILE": str(path)}
            if name == TWO_CALLS:
                env["CREDIT_RISK_CANARY_JOINED_CALLS"] = "false"
            log = workdir / f"{_slug(name)}.log"
            servers[name] = stack.enter_context(served(env, log_path=log))
        yield servers


def two_models(workdir: Path) -> tuple[str, str]:
    """The champion (the course export) and a challenger (another split seed: other trees) in a
    model store of their own under `workdir`, for this process and the servers it starts."""
    os.environ["BENTOML_HOME"] = str(workdir / "home")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return run_export().onnx_tag, run_export(seed=2).onnx_tag


def _slug(name: str) -> str:
    return name.replace(",", "").replace(" ", "-")


def rounds(
    champion: str,
    challenger: str,
    seconds: int,
    count: int,
    workdir: Path,
    routing_only: bool = False,
    control: bool = False,
    two_calls: bool = False,
) -> Any:
    bodies = [orjson.dumps(r) for r in applicant_records(load_applicants())[:500]]
    runs: dict[str, list[dict[str, float]]] = {}
    with _servers(champion, challenger, workdir, routing_only, control, two_calls) as servers:
        names = list(servers)
        for number in range(count):
            # Each round starts with another case: no case always follows the same one.
            for name in names[number % len(names) :] + names[: number % len(names)]:
                server = servers[name]
                cpu_before = cpu_seconds([server.process.pid])
                run = run_wrk_bodies(
                    server.url, "/classify", bodies, CONNECTIONS, seconds, workdir,
                    threads=2, name=_slug(name),
                )  # fmt: skip
                cpu = cpu_seconds([server.process.pid]) - cpu_before
                run["server_cpu_us_per_request"] = round(cpu / max(run["requests"], 1) * 1e6, 2)
                runs.setdefault(name, []).append(run)
                print(f"   round {number + 1} {name:>20}: {run['rps']:9,.0f} req/s  "
                      f"p99 {run.get('p99_ms', float('nan')):.1f} ms  "
                      f"server CPU {run['server_cpu_us_per_request']:.1f} us/request  "
                      f"non-2xx {run['non_2xx']:.0f}", flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    alone = runs["champion alone"]
    alone_cpu = statistics.median(r["server_cpu_us_per_request"] for r in alone)
    for name, case_runs in runs.items():
        # Each round against the champion alone's round of the same pass (same machine load).
        ratios = [round(r["rps"] / a["rps"], 3) for r, a in zip(case_runs, alone, strict=True)]
        cpu = statistics.median(r["server_cpu_us_per_request"] for r in case_runs)
        out[name] = {
            "rounds": case_runs,
            "rps": statistics.median(r["rps"] for r in case_runs),
            "p99_ms": statistics.median(r.get("p99_ms", float("nan")) for r in case_runs),
            "ratio_per_round": ratios,
            "ratio": statistics.median(ratios),
            "server_cpu_us_per_request": cpu,
            # The champion alone's CPU per request over this case's: the rate this case would
            # keep where the servers' CPU is what limits it.
            "cpu_ratio": round(alone_cpu / cpu, 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--routing-only",
        action="store_true",
        help=f"add a canary at fraction {ROUTING_ONLY_FRACTION:g}: routing, no challenger calls",
    )
    parser.add_argument(
        "--control", action="store_true", help="add a second champion alone (an A/A pair)"
    )
    parser.add_argument(
        "--two-calls",
        action="store_true",
        help="add the canary with CREDIT_RISK_CANARY_JOINED_CALLS=false (one call per model)",
    )
    args = parser.parse_args()
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="credit-risk-bench-challenger-") as tmp:
        workdir = Path(tmp)
        champion, challenger = two_models(workdir)
        http = rounds(
            champion, challenger, args.seconds, args.rounds, workdir, args.routing_only,
            args.control, args.two_calls,
        )  # fmt: skip
    result = {"machine": machine, "load_average_at_end": os.getloadavg(),
              "connections": CONNECTIONS, "seconds": args.seconds,
              "canary_fraction": CANARY_FRACTION, "targets": TARGETS, "http": http}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    for name, entry in http.items():
        target = TARGETS.get(name)
        verdict = (
            ""
            if target is None
            else f"  target >= {target}x: " + ("met" if entry["ratio"] >= target else "NOT met")
        )
        print(f"{name:>20}: {entry['rps']:9,.0f} req/s ({entry['ratio']:.3f}x alone, "
              f"rounds {entry['ratio_per_round']})  p99 {entry['p99_ms']:.1f} ms  server CPU "
              f"{entry['server_cpu_us_per_request']:.1f} us/request "
              f"({entry['cpu_ratio']:.3f}x alone's){verdict}")  # fmt: skip
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
