"""What the security layers cost (issue 14), measured in one run on this machine.

1. The reject path: a flood of requests with a bad API key (401) at 64 connections against the
   same flood of bad bodies (422) on the server before this work (commit BASE, no request ids,
   no keys), in interleaved rounds, same wrk settings, median round per case. Every request
   carries one applicant body (the 401 never reads it).
2. The accepted path: valid requests (200) on the server before, on this server without keys
   (request-id layer only) and with keys.
3. In process: the cost of making a request id (this worker's prefix and a counter, against
   uuid4), and of each layer per request around an ASGI app that answers at once.

    python -m bench.api_keys                       # ~4 min
    python -m bench.api_keys --seconds 5 --rounds 2

Server and load generator share the machine's cores: compare within one run.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import timeit
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.types import Receive, Scope, Send

from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.process import PROJECT_ROOT, ServedProcess, served
from service.http.api_keys import ApiKeys
from service.http.auth import ApiKeyMiddleware
from service.http.request_id import RequestIdMiddleware, RequestIds

RESULTS = Path(__file__).parent / "results" / "api_keys.json"
BASE = "5bd64f3"  # main before issue 14
CONNECTIONS = 64
GOOD_KEY = "bench-client-key-0123456789"
BAD_KEY = "bench-client-key-0123456780"


@dataclass(frozen=True)
class Case:
    name: str
    server: str  # "base", "open", "keyed"
    bad_bodies: bool
    headers: dict[str, str]
    expected: int


CASES = (
    Case("base 422 (bad body)", "base", True, {}, 422),
    Case("keyed 401 (bad key)", "keyed", False, {"authorization": f"Bearer {BAD_KEY}"}, 401),
    Case("open 422 (request ids, no keys)", "open", True, {}, 422),
    Case("keyed 422 (bad body, good key)", "keyed", True, {"authorization": f"Bearer {GOOD_KEY}"}, 422),
    Case("base 200", "base", False, {}, 200),
    Case("open 200 (request ids, no keys)", "open", False, {}, 200),
    Case("keyed 200 (good key)", "keyed", False, {"authorization": f"Bearer {GOOD_KEY}"}, 200),
)  # fmt: skip


@contextmanager
def _servers(model_tag: str, workdir: Path) -> Iterator[dict[str, ServedProcess]]:
    base_tree = workdir / "base"
    base_tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", BASE], cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive, check=True)
    keys = workdir / "api-keys"
    keys.write_text(f"bench {GOOD_KEY}\n")
    env = {"CREDIT_RISK_MODEL_TAG": model_tag}
    with ExitStack() as stack:
        yield {
            "base": stack.enter_context(served(env, log_path=workdir / "base.log", cwd=base_tree)),
            "open": stack.enter_context(served(env, log_path=workdir / "open.log")),
            "keyed": stack.enter_context(
                served(
                    {**env, "CREDIT_RISK_API_KEYS_FILE": str(keys)}, log_path=workdir / "keyed.log"
                )
            ),
        }


def _check(case: Case, server: ServedProcess, bodies: list[bytes]) -> None:
    answer = httpx.post(
        f"{server.url}/classify",
        content=bodies[0],
        headers={"content-type": "application/json", **case.headers},
        timeout=30,
    )
    if answer.status_code != case.expected:
        raise RuntimeError(f"{case.name}: {answer.status_code} {answer.text[:300]}")
    if ("x-request-id" in answer.headers) != (case.server != "base"):
        raise RuntimeError(f"{case.name}: not the code it should run (request ids from {BASE} on)")


def http_rounds(model_tag: str, seconds: int, rounds: int, workdir: Path) -> dict[str, Any]:
    records = applicant_records(load_applicants())[:500]
    good = [orjson.dumps(r) for r in records]
    bad = [orjson.dumps({**r, "age": 12}) for r in records]  # 422: a minor
    runs: dict[str, list[dict[str, float]]] = {c.name: [] for c in CASES}
    with _servers(model_tag, workdir) as servers:
        for case in CASES:
            _check(case, servers[case.server], bad if case.bad_bodies else good)
        for number in range(rounds):
            for case in CASES:
                run = run_wrk_bodies(
                    servers[case.server].url, "/classify", bad if case.bad_bodies else good,
                    CONNECTIONS, seconds, workdir, threads=2, name=f"{case.server}",
                    headers=case.headers,
                )  # fmt: skip
                runs[case.name].append(run)
                print(f"   round {number + 1} {case.name:>34}: {run['rps']:9,.0f} req/s  "
                      f"p50 {run.get('p50_ms', float('nan')):.2f} ms  "
                      f"p99 {run.get('p99_ms', float('nan')):.1f} ms  "
                      f"non-2xx {run['non_2xx']:.0f}", flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    for case in CASES:
        case_runs = runs[case.name]
        out[case.name] = {
            "rounds": case_runs,
            "rps": statistics.median(r["rps"] for r in case_runs),
            "p50_ms": statistics.median(r.get("p50_ms", float("nan")) for r in case_runs),
            "p99_ms": statistics.median(r.get("p99_ms", float("nan")) for r in case_runs),
        }
    return out


async def _answer_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _per_call_us(app: Any, scope: Scope, calls: int = 50_000) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app(scope, receive, send)
        return (time.perf_counter() - started) / calls * 1e6

    return min(asyncio.run(run()) for _ in range(5))


def in_process(workdir: Path) -> dict[str, float]:
    ids = RequestIds()
    keys_file = workdir / "inprocess-keys"
    keys_file.write_text("".join(f"client{n} key-of-client-{n:012d}\n" for n in range(50)))
    keys = ApiKeys(keys_file, reload_s=5)
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", b"200"), (b"user-agent", b"bench")]  # fmt: skip
    scope = {"type": "http", "method": "POST", "path": "/classify", "headers": headers}
    with_key = {
        **scope,
        "headers": [*headers, (b"authorization", b"Bearer key-of-client-000000000049")],
    }
    with_bad_key = {
        **scope,
        "headers": [*headers, (b"authorization", b"Bearer key-of-client-000000000099")],
    }
    bare = _per_call_us(_answer_at_once, scope)
    request_ids = _per_call_us(RequestIdMiddleware(_answer_at_once), scope)
    api_keys = ApiKeyMiddleware(_answer_at_once, keys, ops_open=False)
    accepted = _per_call_us(api_keys, with_key)
    refused = _per_call_us(RequestIdMiddleware(api_keys), with_bad_key)
    return {
        "new_id_counter_us": min(timeit.repeat(ids.new, number=200_000, repeat=3)) / 200_000 * 1e6,
        "new_id_uuid4_us": min(timeit.repeat(lambda: uuid.uuid4().hex, number=200_000, repeat=3))
        / 200_000
        * 1e6,
        "bare_app_us": bare,
        "request_id_layer_us": request_ids - bare,
        "api_key_layer_accepted_us": accepted - bare,
        "refusal_with_request_id_us": refused,
        "keys_in_file": 50,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="credit-risk-bench-keys-") as tmp:
        workdir = Path(tmp)
        os.environ["BENTOML_HOME"] = str(workdir / "home")  # a model store of its own
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        local = in_process(workdir)
        print(json.dumps(local, indent=1), flush=True)
        summary = run_export()
        http = http_rounds(summary.onnx_tag, args.seconds, args.rounds, workdir)
    result = {"machine": describe(), "base_commit": BASE, "connections": CONNECTIONS,
              "seconds": args.seconds, "in_process": local, "http": http}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    base = http["base 422 (bad body)"]["rps"]
    for name, entry in http.items():
        print(f"{name:>34}: {entry['rps']:9,.0f} req/s ({entry['rps'] / base:.2f}x base 422)  "
              f"p50 {entry['p50_ms']:.2f} ms  p99 {entry['p99_ms']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
