"""SIGTERM drain (service/http/drain.py) in virtual time (tests/virtual_time.py): a real
SIGTERM to this process, the worker's handler wrapped, the delay waited out on the loop's
clock. (The whole drain of a real server: tests/reliability/test_load_and_lifecycle.py.)"""

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

from service.http.drain import Drain
from tests.virtual_time import loop, run

DELAY_S = 30.0


@contextmanager
def _sigterm_handler(handler: object) -> Iterator[None]:
    """`handler` for SIGTERM in this process (as uvicorn installs its own), restored after."""
    previous = signal.signal(signal.SIGTERM, handler)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_reaches_the_server_after_the_delay_and_only_once() -> None:
    stopped_at: list[float] = []

    def uvicorn_stop(sig: int, frame: FrameType | None) -> None:
        stopped_at.append(loop().time())

    async def main() -> tuple[bool, bool, list[float], float]:
        drain = Drain(DELAY_S)
        drain.install(asyncio.get_running_loop())
        before = drain.draining
        signalled = loop().time()
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(DELAY_S / 2)
        signal.raise_signal(signal.SIGTERM)  # a second SIGTERM changes nothing
        await asyncio.sleep(DELAY_S / 2 - 0.001)
        early = list(stopped_at)
        await asyncio.sleep(DELAY_S * 2)
        return before, drain.draining, early, signalled

    with _sigterm_handler(uvicorn_stop):
        before, draining, early, signalled = run(main())
    assert not before and draining
    assert early == []  # still serving until the delay is over
    assert stopped_at == [
        pytest.approx(signalled + DELAY_S)
    ]  # then once, the first signal's delay later


def test_without_a_handler_to_delay_sigterm_is_left_alone() -> None:
    async def main() -> object:
        Drain(DELAY_S).install(asyncio.get_running_loop())
        return signal.getsignal(signal.SIGTERM)

    with _sigterm_handler(signal.SIG_DFL):
        assert run(main()) is signal.SIG_DFL
