"""The event-loop-lag admission controller on a real event loop whose lag the test makes."""

import asyncio
import time

from service.http.admission import STANDING_PROBES, LagAdmission

TARGET_S = 0.03


async def _arrivals(
    admission: LagAdmission, seconds: float, busy_s: float, per_iteration: int = 1
) -> list[bool]:
    """`per_iteration` requests arrive every loop iteration; each iteration also burns
    `busy_s` of CPU (the work of the requests the loop found), so the probe timer runs about
    that late."""
    decisions: list[bool] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        decisions.extend(admission.admit() for _ in range(per_iteration))
        if busy_s:
            time.sleep(busy_s)  # blocks the loop, as a long iteration does
        await asyncio.sleep(0)
    return decisions


def test_standing_lag_sheds_evenly_and_recovers() -> None:
    async def main() -> tuple[list[bool], float, list[bool], float]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=0.1)
        overloaded = await _arrivals(admission, 1.5, busy_s=0.1, per_iteration=200)
        shed_to = admission.state.fraction
        await asyncio.sleep(1.0)  # idle: the probe finds the loop on time again
        recovered = await _arrivals(admission, 0.2, busy_s=0)
        return overloaded, shed_to, recovered, admission.state.fraction

    overloaded, shed_to, recovered, fraction = asyncio.run(main())
    assert shed_to < 0.5  # a standing queue: most new requests refused
    tail = overloaded[len(overloaded) // 2 :]
    assert 0 < sum(tail) < len(tail)  # some admitted, some refused
    # Evenly: never a long run of refusals while a fraction is admitted.
    longest, run = 0, 0
    for admitted in tail:
        run = 0 if admitted else run + 1
        longest = max(longest, run)
    assert longest <= int(1 / max(shed_to, 0.02)) + 1
    assert fraction == 1.0 and all(recovered)


def test_one_stall_and_its_burst_shed_nothing() -> None:
    """A pause (GC, a stopped process) followed by the burst it held back is not a queue."""

    async def main() -> list[bool]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=0.1)
        await _arrivals(admission, 0.05, busy_s=0)
        time.sleep(0.3)  # the stall: one very late probe
        burst = [admission.admit() for _ in range(500)]
        time.sleep(0.08)  # the held-back burst, answered in one long iteration: a second one
        await asyncio.sleep(0)
        burst += await _arrivals(admission, 0.2, busy_s=0)
        return burst

    assert all(asyncio.run(main()))
    assert STANDING_PROBES >= 3


def test_probe_stops_when_idle_and_restarts() -> None:
    async def main() -> tuple[bool, bool]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=0.1)
        admission.admit()
        running = admission._probe is not None
        await asyncio.sleep(1.3)
        return running, admission._probe is None

    assert asyncio.run(main()) == (True, True)


def test_the_request_right_after_a_flood_is_admitted() -> None:
    """The flood ends with the fraction low; the lag is back under target but not yet drained:
    a lone request is admitted at once (the fraction would refuse most of them)."""

    async def main() -> tuple[float, bool, float]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=0.1)
        await _arrivals(admission, 1.0, busy_s=0.1, per_iteration=200)
        admission.state.lag_s = TARGET_S / 2  # the last probe: under target, not drained
        admission._arrived_since_probe = False
        admission._credit = 0.0  # the fraction alone would refuse this request
        shed_to = admission.state.fraction
        return shed_to, admission.admit(), admission.state.fraction

    shed_to, admitted, fraction = asyncio.run(main())
    assert shed_to < 0.5 and fraction == shed_to
    assert admitted
