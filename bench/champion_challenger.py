"""What a challenger costs on /classify (issue 24): three servers, each 2 workers on the same
two models, the champion alone, with the challenger in shadow mode (it scores every applicant
off the response path), and in canary mode (it answers 5% of the applicants); alternating wrk
rounds of one-applicant requests on 64 connections, median round per case.

    python -m bench.champion_challenger                       # ~2 min
    python -m bench.champion_challenger --seconds 5 --rounds 2

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

from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.process import ServedProcess, served

RESULTS = Path(__file__).parent / "results" / "champion_challenger.json"
CONNECTIONS = 64
CANARY_FRACTION = 0.05
TARGETS = {"shadow": 0.85, "canary": 0.97}  # of the champion alone's throughput


@contextmanager
def _servers(champion: str, challenger: str, workdir: Path) -> Iterator[dict[str, ServedProcess]]:
    files = {
        "champion alone": f"champion {champion}\n",
        "shadow": f"champion {champion}\nchallenger {challenger}\nmode shadow\n",
        "canary": f"champion {champion}\nchallenger {challenger}\nmode canary\n"
        f"canary_fraction {CANARY_FRACTION}\n",
    }
    with ExitStack() as stack:
        servers = {}
        for name, text in files.items():
            path = workdir / f"models-{name.replace(' ', '-')}"
            path.write_text(text)
            env = {"CREDIT_RISK_MODEL_TAG": champion, "CREDIT_RISK_MODELS_FILE": str(path)}
            log = workdir / f"{name.replace(' ', '-')}.log"
            servers[name] = stack.enter_context(served(env, log_path=log))
        yield servers


def rounds(champion: str, challenger: str, seconds: int, count: int, workdir: Path) -> Any:
    bodies = [orjson.dumps(r) for r in applicant_records(load_applicants())[:500]]
    runs: dict[str, list[dict[str, float]]] = {}
    with _servers(champion, challenger, workdir) as servers:
        for number in range(count):
            for name, server in servers.items():
                run = run_wrk_bodies(
                    server.url, "/classify", bodies, CONNECTIONS, seconds, workdir,
                    threads=2, name=name.replace(" ", "-"),
                )  # fmt: skip
                runs.setdefault(name, []).append(run)
                print(f"   round {number + 1} {name:>14}: {run['rps']:9,.0f} req/s  "
                      f"p99 {run.get('p99_ms', float('nan')):.1f} ms  "
                      f"non-2xx {run['non_2xx']:.0f}", flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    alone = runs["champion alone"]
    for name, case_runs in runs.items():
        out[name] = {
            "rounds": case_runs,
            "rps": statistics.median(r["rps"] for r in case_runs),
            "p99_ms": statistics.median(r.get("p99_ms", float("nan")) for r in case_runs),
            # Each round against the champion-alone round just before it (same machine load).
            "ratio_per_round": [
                round(r["rps"] / a["rps"], 3) for r, a in zip(case_runs, alone, strict=True)
            ],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="credit-risk-bench-challenger-") as tmp:
        workdir = Path(tmp)
        os.environ["BENTOML_HOME"] = str(workdir / "home")  # a model store of its own
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        champion = run_export().onnx_tag
        challenger = run_export(seed=2).onnx_tag
        http = rounds(champion, challenger, args.seconds, args.rounds, workdir)
    result = {"machine": machine, "load_average_at_end": os.getloadavg(),
              "connections": CONNECTIONS, "seconds": args.seconds,
              "canary_fraction": CANARY_FRACTION, "targets": TARGETS, "http": http}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    alone = http["champion alone"]["rps"]
    for name, entry in http.items():
        target = TARGETS.get(name)
        verdict = (
            ""
            if target is None
            else f"  target >= {target}x: "
            + ("met" if entry["rps"] / alone >= target else "NOT met")
        )
        print(f"{name:>14}: {entry['rps']:9,.0f} req/s ({entry['rps'] / alone:.3f}x alone)  "
              f"p99 {entry['p99_ms']:.1f} ms  rounds {entry['ratio_per_round']}{verdict}")  # fmt: skip
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
