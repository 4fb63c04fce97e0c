"""Reading Prometheus text from a server's /metrics in tests."""

import re
import time
from collections.abc import Callable

import httpx


def metric_total(metrics: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over every label set that has these label values."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    for match in pattern.finditer(metrics):
        label_text = match.group(1) or ""
        if all(f'{key}="{value}"' in label_text for key, value in labels.items()):
            total += float(match.group(2))
    return total


def scrape_until(url: str, written: Callable[[str], bool], timeout_s: float = 15) -> str:
    """The server's /metrics once `written(text)` holds: workers write what they counted at
    their next flush, up to a flush interval after the request (service/metrics.py), so poll
    for the counts the test expects instead of waiting an interval out. After `timeout_s`, the
    last scrape (the caller's assertions then say what is missing).

    BentoML builds /metrics in a thread, reading the metric files one after another, while a
    worker's flush may be writing them: the scrape that first shows the awaited counts may have
    read another file (a histogram beside a counter) before that same flush wrote it. A flush
    takes microseconds and the scrape's answer milliseconds more (on one worker, the flush runs
    on the event loop that sends the answer), so the scrape after it is returned: it reads
    every file of that flush whole."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = _scrape(url)
        if written(text):
            again = _scrape(url)
            return again if written(again) else text
        if time.monotonic() > deadline:
            return text
        time.sleep(0.02)


def _scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text
