"""Swagger documents what the server really does: the page, drawn by a real headless Chromium,
shows our title and every route; the document has our info, every refusal and the extra bodies."""

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from export.pipeline import ExportSummary
from harness.process import ServedProcess

pytestmark = pytest.mark.slow
ROUTES = (
    "/classify", "/classify_batch", "/classify_bulk", "/explain", "/explain_batch", "/info",
    "/v2/models/credit_risk/infer",
)  # fmt: skip
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def test_swagger_page_shows_our_title_and_routes(server: ServedProcess, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (.ci/run installs it: apt-get install chromium)"
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=20000", "--dump-dom", f"{server.url}/"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    page = result.stdout
    assert "<title>Credit risk API</title>" in page, result.stderr[-2000:]
    assert 'class="title"' in page and "Credit risk API" in page.split('class="title"', 1)[1]
    for route in ROUTES:
        assert f"{route}<" in page or f'"{route}"' in page or f">{route}" in page, route
    assert "BentoML Slack" not in page


def test_document_states_our_info_and_every_refusal(
    server: ServedProcess, exported: ExportSummary
) -> None:
    doc = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    info = doc["info"]
    assert info["title"] == "Credit risk API" and info["version"] == exported.onnx_tag
    assert "BentoML" not in info["description"] and info["contact"]["name"]
    for path in ("/classify", "/classify_batch", "/classify_bulk", "/explain", "/explain_batch"):
        operation = doc["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True
        assert {"400", "413", "415", "422", "503"} <= set(operation["responses"]), path
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        assert operation["requestBody"]["content"]["application/json"].get("example"), path
    bulk = doc["paths"]["/classify_bulk"]["post"]
    assert {
        "text/csv",
        "application/vnd.apache.arrow.stream",
        "application/vnd.apache.arrow.file",
    } <= set(bulk["requestBody"]["content"])
    assert "application/vnd.apache.arrow.stream" in bulk["responses"]["200"]["content"]
    assert [p["name"] for p in bulk["parameters"]] == ["reasons", "per_row"]
    batch = doc["paths"]["/classify_batch"]["post"]["requestBody"]["content"]["application/json"]
    schemas = doc["components"]["schemas"]
    assert schemas[batch["schema"]["$ref"].rsplit("/", 1)[-1]]["maxItems"] == 1000
    assert set(schemas["Error"]["required"]) == {"error", "details", "request_id"}
