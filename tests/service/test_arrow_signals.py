"""A SIGTERM while a bulk CSV body is parsed on the main thread: the parse finishes and the
signal reaches the process's own handler (the drain's, in a worker), as in
service.wiring.keep_arrow_off_signals."""

import os
import signal
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from features.schema import FIELDS
from service.csv_input import parse_applicant_csv
from service.wiring import keep_arrow_off_signals
from tests.contract_cases import GOOD

ROWS = 400_000  # a parse of ~0.2-0.5 s here: the signal comes while it runs


@pytest.fixture
def sigterm_seen() -> Iterator[list[float]]:
    """When each SIGTERM reached the Python handler (time.monotonic)."""
    seen: list[float] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(time.monotonic()))
    yield seen
    signal.signal(signal.SIGTERM, previous)
    pa.enable_signal_handlers(True)  # pyarrow's default, for the tests after this one


def _csv(rows: int) -> bytes:
    line = ",".join(str(GOOD[field]) for field in FIELDS).encode() + b"\n"
    return ",".join(FIELDS).encode() + b"\n" + line * rows


def test_a_sigterm_during_a_csv_parse_does_not_cancel_it(sigterm_seen: list[float]) -> None:
    keep_arrow_off_signals()
    body = _csv(ROWS)
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(0.02, send)
    started = time.monotonic()
    timer.start()
    columns = parse_applicant_csv(body, max_rows=ROWS)
    parsed = time.monotonic()
    timer.join()
    assert columns.n_rows == ROWS
    assert len(sigterm_seen) == 1
    assert started < sent[0] < parsed, "the signal came after the parse: it tested nothing"
