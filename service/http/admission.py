"""Overload control: admit what the worker can answer in time, refuse the rest early and evenly.

Under overload the queue forms in front of the application, in the sockets the event loop has
not read yet: a request waits there for about one loop iteration, and an iteration grows with
everything the loop has to do for the requests it finds. So the wait a request arriving now
will see is measured directly, as the event loop's lag: how late a short periodic timer fires.

While the lag stays above `target_lag_s` for a whole `window_s` and at least
`STANDING_PROBES` probes in a row (CoDel's rule: a standing queue, not one stall or burst), the
worker admits only a fraction of new requests and refuses the others
with 503 before reading their bodies (a refusal costs a small fraction of an answer). The
fraction shrinks multiplicatively while the lag stays high (in proportion to how far over
target it is) and grows back additively once it is
below target (at once when it is far below: the queue is gone), so the admitted requests keep
an answer time near the target whatever the machine's speed; refusals are spread evenly over
arrivals (a credit counter, no randomness). Below the target, the first request of each probe
interval is admitted whatever the fraction: when a flood ends, the next request is answered at
once instead of waiting out the fraction's recovery, while during a flood this adds at most
one request per probe interval.
The probe timer runs only while requests arrive.

Every time is read from the event loop's own clock (`loop.time()`), the one its timers run on,
so a test drives the controller with a fake loop in virtual time.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import overloaded

PROBE_INTERVAL_S = 0.01
IDLE_STOP_S = 1.0  # the probe stops after this long without a request
DECREASE = 0.8  # fraction kept per probe while the queue stands, at most
MAX_CUT = 0.25  # ... and at least: one probe never cuts the fraction by more than 4x
INCREASE = 0.05  # added per probe once the lag is below target
DRAINED = 0.25  # a lag under this share of the target means no queue is left
MIN_FRACTION = 0.02  # never refuse everything: keep measuring what admitted requests cost
STANDING_PROBES = 3  # a pause and the burst behind it make two late probes, not a queue


@dataclass
class AdmissionState:
    lag_s: float = 0.0
    fraction: float = 1.0
    refused: int = 0


class LagAdmission:
    """`loop`: the event loop whose lag is measured; by default the one running the request."""

    def __init__(
        self, target_lag_s: float, window_s: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.target_lag_s = target_lag_s
        self.window_s = window_s
        self._loop = loop
        self.state = AdmissionState()
        self._credit = 0.0
        self._above_since: float | None = None
        self._late_probes = 0
        self._probe: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._last_request = 0.0
        self._arrived_since_probe = False

    def admit(self) -> bool:
        """Whether to serve a request arriving now (False: answer 503 without reading it)."""
        loop = self._loop or asyncio.get_running_loop()
        self._last_request = now = loop.time()
        if self._probe is None:
            self._schedule(loop, now)
        fraction = self.state.fraction
        if fraction >= 1.0:
            return True
        first_of_interval = not self._arrived_since_probe
        self._arrived_since_probe = True
        if first_of_interval and self.state.lag_s <= self.target_lag_s:
            return True
        self._credit += fraction
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        self.state.refused += 1
        return False

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        self._due = now + PROBE_INTERVAL_S
        self._probe = loop.call_later(PROBE_INTERVAL_S, self._measure, loop)

    def _measure(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        lag = max(0.0, now - self._due)
        self._arrived_since_probe = False
        state = self.state
        state.lag_s = lag
        if lag > self.target_lag_s:
            if self._above_since is None:
                self._above_since = now
            self._late_probes += 1
            if self._late_probes >= STANDING_PROBES and now - self._above_since >= self.window_s:
                # In proportion to how far over target the lag is: an iteration's length grows
                # with what the loop admits, so a lag 4x the target calls for ~1/4 the work.
                cut = min(DECREASE, max(MAX_CUT, self.target_lag_s / lag))
                state.fraction = max(MIN_FRACTION, state.fraction * cut)
        else:
            self._above_since = None
            self._late_probes = 0
            # Well under target the queue is gone: admit everything again at once (a request
            # right after a flood must not be refused); near it, grow back step by step.
            drained = lag < self.target_lag_s * DRAINED
            state.fraction = 1.0 if drained else min(1.0, state.fraction + INCREASE)
        if now - self._last_request > IDLE_STOP_S and state.fraction >= 1.0:
            self._probe = None  # idle: the next request starts it again
            return
        self._schedule(loop, now)


class Admission:
    """Whether to serve a request now: the event-loop lag controller, then the bound of the
    batcher queue the request would join (when it goes through one); both checked before the
    body is read."""

    def __init__(self, lag: LagAdmission | None) -> None:
        self.lag = lag

    def check(self, queue_refusal: Callable[[], str | None] | None) -> None:
        """Raises a 503 `RequestError` saying why when the request is refused."""
        if self.lag is not None and not self.lag.admit():
            state = self.lag.state
            raise overloaded(
                f"server overloaded: requests wait {state.lag_s * 1000:.0f} ms before being "
                f"read (target {self.lag.target_lag_s * 1000:.0f} ms); "
                f"admitting {state.fraction:.0%} of them"
            )
        if queue_refusal is not None:
            reason = queue_refusal()
            if reason is not None:
                raise overloaded(reason)
