"""Where a canary's CPU goes on the scoring path, in process (issue 24): a worker built as the
server builds it (`build_worker`, models file and all) scores single applicants through
`CreditScorer.classify_json` from concurrent coroutines on uvloop, so its batcher merges them
as under load, without HTTP or a load generator. Each case runs in a fresh interpreter, the
cases alternate, and each reports the process's CPU per request; the median over rounds:

    python -m bench.canary_path --rounds 8         # ~3 min

Cases (the same two models as `bench.champion_challenger`, exported if missing):
- champion alone: a models file naming only the champion;
- routing only: a canary at fraction 1e-12, which routes every applicant and sends none to
  the challenger;
- routing, hash skipped: the same with `challenger_answers` replaced by `False`: what the
  share's hash costs between a request's other work (a diagnostic, never served);
- canary 5%: the challenger answers 5% of applicants, as served: a flush holding rows of both
  models makes one call of the two joined in one session (runners/pair.py);
- canary 5%, two calls: the same without the joined session: a flush holding rows of both
  makes one call per model (as before the join);
- canary 5%, champion's session: two calls, with the champion's own ONNX session as the
  challenger's model: what the extra model call costs whichever model makes it.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from bench.champion_challenger import two_models

CASES = (
    "champion alone",
    "routing only",
    "routing, hash skipped",
    "canary 5%",
    "canary 5%, two calls",
    "canary 5%, champion's session",
)
CONCURRENCY = 16  # coroutines: merged batches of about this many requests
APPLICANTS = 500  # distinct bodies, as bench.champion_challenger sends


def _models_file(case: str, champion: str, challenger: str) -> str:
    if case == "champion alone":
        return f"champion {champion}\n"
    fraction = "1e-12" if case.startswith("routing") else "0.05"
    return (
        f"champion {champion}\nchallenger {challenger}\nmode canary\ncanary_fraction {fraction}\n"
    )


async def _score(case: str, requests: int) -> float:
    """CPU seconds per request of `requests` single applicants (the worker is built here)."""
    import orjson

    import service.scoring
    from export.dataset import applicant_records, load_applicants
    from service.settings import ServiceSettings
    from service.wiring import build_worker

    if case == "routing, hash skipped":
        service.scoring.challenger_answers = lambda row, limit: False
    worker = build_worker(ServiceSettings())
    scorer = worker.scorer
    models, batcher = scorer.models, worker.batcher
    if case in ("canary 5%, two calls", "canary 5%, champion's session"):
        assert models.challenger is not None and batcher is not None and worker.engines
        challenger = worker.engines.challenger
        assert challenger is not None
        run = (worker.runner if "champion" in case else challenger.runner).predict
        alone = partial(batcher.predict, model=lambda rows: run(rows))  # a group of its own
        scorer.switch(replace(models, challenger=replace(models.challenger, predict_rows=alone)))
    bodies = [orjson.dumps(r) for r in applicant_records(load_applicants())[:APPLICANTS]]

    async def client(first: int, count: int) -> None:
        for i in range(first, first + count * CONCURRENCY, CONCURRENCY):
            await scorer.classify_json(bodies[i % len(bodies)])
            await asyncio.sleep(0)  # let the other coroutines queue: merged flushes

    await asyncio.gather(*(client(k, 200) for k in range(CONCURRENCY)))  # warm-up
    started = time.process_time()
    await asyncio.gather(*(client(k, requests // CONCURRENCY) for k in range(CONCURRENCY)))
    return (time.process_time() - started) / (requests // CONCURRENCY * CONCURRENCY)


def main_case(case: str, requests: int) -> None:
    import uvloop

    print(json.dumps({"case": case, "cpu_us": uvloop.run(_score(case, requests)) * 1e6}))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.canary_path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=80_000, help="per case and round")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one child's case
    args = parser.parse_args()
    if args.case is not None:
        main_case(args.case, args.requests)
        return
    cpu: dict[str, list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="credit-risk-bench-canary-path-") as tmp:
        workdir = Path(tmp)
        champion, challenger = two_models(workdir)
        path = workdir / "models"
        env = {**os.environ, "CREDIT_RISK_MODEL_TAG": champion}
        env["CREDIT_RISK_MODELS_FILE"] = str(path)
        for number in range(args.rounds):
            for case in CASES[number % len(CASES) :] + CASES[: number % len(CASES)]:
                path.write_text(_models_file(case, champion, challenger))
                command = [sys.executable, "-m", "bench.canary_path", "--case", case]
                command += ["--requests", str(args.requests)]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                value = json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"]
                cpu[case].append(value)
                print(f"   round {number + 1} {case:>30}: {value:6.2f} us a request", flush=True)
    alone = statistics.median(cpu["champion alone"])
    for case, values in cpu.items():
        median = statistics.median(values)
        print(f"{case:>30}: median {median:6.2f} us a request ({median - alone:+.2f})")


if __name__ == "__main__":
    main()
