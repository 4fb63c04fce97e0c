"""Isolation under concurrency, SIGTERM with requests in flight, a killed worker (overload is in
test_overload.py)."""

import asyncio
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil
import pytest

from export.pipeline import ExportSummary
from harness.process import served

pytestmark = pytest.mark.slow  # starts real server processes


def _corrupt(record: dict[str, object], rng: random.Random) -> dict[str, object]:
    field = rng.choice(list(record))
    bad_value = rng.choice([-1, "x", None, 1e300, "castle"])
    return {**record, field: bad_value if field not in ("home", "job") else "castle"}


async def _mixed(
    url: str, records: list[dict[str, object]]
) -> list[tuple[str, int, object, httpx.Response]]:
    rng = random.Random(7)
    jobs: list[tuple[str, int, object]] = []
    for i in range(600):
        kind = rng.choice(["valid", "valid", "valid", "invalid", "bulk"])
        if kind == "valid":
            jobs.append(("valid", i, records[i]))
        elif kind == "invalid":
            jobs.append(("invalid", i, _corrupt(records[i], rng)))
        else:
            rows = records[i : i + 20]
            columns = {k: [r[k] for r in rows] for k in rows[0]}
            if rng.random() < 0.5:
                columns["age"][3] = -4  # one bad row
                jobs.append(("bulk-bad", i, columns))
            else:
                jobs.append(("bulk", i, columns))
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=200)
    ) as client:
        answers = await asyncio.gather(
            *(
                client.post("/classify_bulk" if kind.startswith("bulk") else "/classify", json=body)
                for kind, _, body in jobs
            )
        )
    return [(kind, i, body, answer) for (kind, i, body), answer in zip(jobs, answers, strict=True)]


def _shed(answer: httpx.Response) -> bool:
    """The front door's overload refusal (a queue wait or the loop's lag past its limit): the
    request's own answer, in the error shape, with Retry-After, neither lost nor swapped."""
    return (
        answer.status_code == 503
        and "retry-after" in answer.headers
        and bool(answer.json()["error"])
        and answer.headers["x-request-id"] == answer.json()["request_id"]
    )


def test_valid_requests_get_their_own_answers_amid_invalid_ones(
    server, records, expected_probability
) -> None:
    """Each of 600 concurrent requests gets its own answer. On a machine busy enough that a
    merged batch waits past its queue limit, the door sheds some with 503 (seen once in a CI
    run with three test workers: a 0.56 s wait against the 0.5 s limit): an answer of their
    own too, but not most of them."""
    results = asyncio.run(_mixed(server.url, records))
    kinds = Counter(kind for kind, *_ in results)
    shed = [i for _, i, _, answer in results if _shed(answer)]
    assert len(shed) <= len(results) // 2, f"{len(shed)} of {len(results)} shed"
    for kind, i, _, answer in results:
        if i in shed:
            continue
        if kind == "valid":
            assert answer.status_code == 200, answer.text
            assert abs(answer.json()["probability"] - expected_probability[i]) <= 1e-6
        elif kind == "bulk":
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(
                answer.json()["probability"], expected_probability[i : i + 20], atol=1e-6
            )
        elif kind == "bulk-bad":
            assert answer.status_code == 422 and "age[3]" in answer.json()["error"]
        else:
            assert 400 <= answer.status_code < 500, answer.text
            assert answer.json()["error"]
    print(f"\nisolation: {dict(kinds)}, {len(shed)} shed, 0 answers lost or swapped")


DRAIN_S = 5.0


def test_sigterm_drains_and_answers_every_accepted_request(
    exported: ExportSummary, records, tmp_path: Path
) -> None:
    """30 bulk requests of 5,000 rows sent just before SIGTERM, 10 more just after it on new
    connections, and one on a connection kept alive (idle) since before SIGTERM: every one is
    answered in full. Meanwhile /readyz says 503 and answers say `Connection: close`; after the
    drain the server stops accepting and exits cleanly."""
    rows = [records[i % len(records)] for i in range(5_000)]
    body = orjson.dumps({k: [r[k] for r in rows] for k in rows[0]})
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_DRAIN_DELAY_S": str(DRAIN_S),
        "CREDIT_RISK_MAX_BULK_BYTES_IN_FLIGHT": str(512 << 20),  # every one admitted at once
        # 40 bulk bodies parsed at once keep the event loop busy for a while on a slow machine,
        # which overload control would rightly answer with some 503s; this test is about the
        # drain, so every request is admitted.
        "CREDIT_RISK_ADMISSION_TARGET_LAG_MS": "60000",
    }
    headers = {"content-type": "application/json"}
    with served(env, log_path=tmp_path / "serve.log") as server:

        async def scenario() -> dict[str, object]:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client,
                httpx.AsyncClient(base_url=server.url, timeout=60) as idle,
                httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as fresh,
            ):
                assert (await idle.post("/classify", json=records[0])).status_code == 200

                def bulk(on: httpx.AsyncClient) -> asyncio.Future[httpx.Response]:
                    return asyncio.ensure_future(
                        on.post("/classify_bulk", content=body, headers=headers)
                    )

                before = [bulk(client) for _ in range(30)]
                await asyncio.sleep(0.15)
                os.killpg(server.process.pid, signal.SIGTERM)
                await asyncio.sleep(0.05)
                after = [bulk(fresh) for _ in range(10)]
                ready = (await fresh.get("/readyz")).status_code
                kept_alive = await idle.post("/classify", json=records[1])
                return {
                    "before": await asyncio.gather(*before),
                    "after": await asyncio.gather(*after),
                    "ready": ready,
                    "kept_alive": kept_alive,
                }

        outcome = asyncio.run(scenario())
        code = server.process.wait(timeout=60)
        try:
            httpx.post(f"{server.url}/classify", json=records[0], timeout=5)
            refused_after = False
        except httpx.HTTPError:
            refused_after = True
    bulk_answers: list[httpx.Response] = [*outcome["before"], *outcome["after"]]  # type: ignore[misc]
    answered = [*bulk_answers, outcome["kept_alive"]]
    statuses = Counter(a.status_code for a in answered)  # type: ignore[attr-defined]
    print(f"\nSIGTERM drain: {statuses[200]}/{len(answered)} answered, exit code {code}")
    assert statuses == {200: 41}, statuses
    assert all(len(a.json()["probability"]) == len(rows) for a in bulk_answers)
    assert all(a.headers.get("connection") == "close" for a in outcome["after"])  # type: ignore[attr-defined]
    assert outcome["ready"] == 503
    assert refused_after
    assert code == 0


def test_killed_worker_is_replaced_and_serving_continues(server, records) -> None:
    arbiter = psutil.Process(server.process.pid)
    workers = [
        p
        for p in arbiter.children(recursive=True)
        if "_bentoml_impl.worker" in " ".join(p.cmdline())
    ]
    assert len(workers) == 2
    victim = workers[0]
    victim.kill()
    victim.wait(timeout=10)
    failures = 0
    deadline = time.monotonic() + 60
    ok_streak = 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while ok_streak < 200 and time.monotonic() < deadline:
            try:
                ok = client.post("/classify", json=records[ok_streak]).status_code == 200
            except httpx.HTTPError:
                ok = False
            ok_streak = ok_streak + 1 if ok else 0
            failures += 0 if ok else 1
    assert ok_streak >= 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = [
            p
            for p in arbiter.children(recursive=True)
            if "_bentoml_impl.worker" in " ".join(p.cmdline())
        ]
        if len(now) == 2 and victim.pid not in {p.pid for p in now}:
            break
        time.sleep(0.5)
    assert len(now) == 2 and victim.pid not in {p.pid for p in now}
    print(f"\nworker {victim.pid} killed; replaced; {failures} requests failed meanwhile")
