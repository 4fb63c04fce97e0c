"""Security fixtures: a key file, a worker to put behind the security layers, log capture."""

import io
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.pipeline import ExportSummary
from service import logs
from service.http.api_keys import digest
from service.settings import ServiceSettings
from service.wiring import Worker, build_worker

PARTNER_KEY = "partner-key-0123456789abcdef"
WEBFORM_KEY = "webform-key-fedcba9876543210"  # stored only as its SHA-256 in the file
KEY_FILE = f"""# clients of the credit-risk API
partner {PARTNER_KEY}

webform sha256:{digest(WEBFORM_KEY.encode()).hex()}
"""


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(KEY_FILE)
    return path


@pytest.fixture(scope="package")
def worker(exported: ExportSummary) -> Iterator[Worker]:
    built = build_worker(ServiceSettings(model_tag=exported.onnx_tag, drain_delay_s=0))
    yield built
    built.scorer.close()


@pytest.fixture
def scrubbed_logs() -> Iterator[io.StringIO]:
    """`service.logs` installed in this process (undone afterwards); what the credit_risk
    loggers write, formatted as a handler would."""
    factory, thread_hook, main_hook = (
        logging.getLogRecordFactory(), threading.excepthook, sys.excepthook,
    )  # fmt: skip
    logs.install()
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("credit_risk")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield text
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.setLogRecordFactory(factory)
        threading.excepthook, sys.excepthook = thread_hook, main_hook
