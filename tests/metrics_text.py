"""Reading Prometheus text from a server's /metrics in tests."""

import re
import time

import httpx

from service.metrics import FLUSH_INTERVAL_S


def metric_total(metrics: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over every label set that has these label values."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    for match in pattern.finditer(metrics):
        label_text = match.group(1) or ""
        if all(f'{key}="{value}"' in label_text for key, value in labels.items()):
            total += float(match.group(2))
    return total


def scrape_settled(url: str) -> str:
    """The server's /metrics once everything it counted so far is written: workers write their
    counts at most `FLUSH_INTERVAL_S` after the request (service/metrics.py), so wait longer."""
    time.sleep(FLUSH_INTERVAL_S * 1.5)
    return httpx.get(f"{url}/metrics", timeout=30).text
