"""Batching correctness under concurrency: 500+ distinct applicants at once, each its own answer."""

import asyncio
import re

import httpx
import numpy as np

from service.process import ServedProcess

CONCURRENT = 600


def _merged_batches(metrics_text: str) -> tuple[float, float]:
    """(model calls, calls that merged more than one request) from credit_risk_batch_requests."""
    total = sum(float(v) for v in re.findall(r"^credit_risk_batch_requests_count\S* (\S+)$", metrics_text, re.M))
    single = sum(
        float(v) for v in re.findall(r'^credit_risk_batch_requests_bucket\{[^}]*le="1\.0"[^}]*\} (\S+)$', metrics_text, re.M)
    )
    return total, total - single


async def _fire(url: str, records: list[dict[str, object]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.post("/classify", json=r) for r in records))


def test_concurrent_requests_each_get_their_own_answer(server: ServedProcess, records, expected_probability) -> None:
    before = _merged_batches(httpx.get(f"{server.url}/metrics").text)
    picks = list(range(CONCURRENT))  # distinct rows of the dataset
    for _ in range(3):  # a few rounds so both workers see real concurrency
        answers = asyncio.run(_fire(server.url, [records[i] for i in picks]))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
        got = np.array([a.json()["probability"] for a in answers])
        np.testing.assert_allclose(got, expected_probability[picks], atol=1e-6)
    calls, merged = _merged_batches(httpx.get(f"{server.url}/metrics").text)
    assert calls > before[0]
    assert merged - before[1] > 0, "no model call merged more than one request"
