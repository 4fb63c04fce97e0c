"""The event-loop-lag admission controller on an event loop whose lag the test makes, in virtual
time (tests/virtual_time.py): a loop iteration "takes" as long as the test says, and the probe
timer fires that late, without any real waiting."""

import asyncio

from service.http.admission import IDLE_STOP_S, LagAdmission
from tests.virtual_time import loop, run, turn

TARGET_S = 0.03
WINDOW_S = 0.1
QUIET_TURN_S = 0.001  # an iteration of a loop that keeps up


async def _arrivals(
    admission: LagAdmission, seconds: float, busy_s: float, per_iteration: int = 1
) -> list[bool]:
    """`per_iteration` requests arrive every loop iteration, and each iteration takes `busy_s`
    (the work of the requests the loop found), so the probe timer runs about that late."""
    decisions: list[bool] = []
    deadline = loop().time() + seconds
    while loop().time() < deadline:
        decisions.extend(admission.admit() for _ in range(per_iteration))
        await turn(busy_s)
    return decisions


def _longest_refusal_run(decisions: list[bool]) -> int:
    longest, run_length = 0, 0
    for admitted in decisions:
        run_length = 0 if admitted else run_length + 1
        longest = max(longest, run_length)
    return longest


def test_standing_lag_sheds_evenly_and_recovers() -> None:
    async def main() -> tuple[list[bool], float, list[bool], float]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=WINDOW_S)
        overloaded = await _arrivals(admission, 1.5, busy_s=0.1, per_iteration=200)
        shed_to = admission.state.fraction
        await asyncio.sleep(1.0)  # idle: the probe finds the loop on time again
        recovered = await _arrivals(admission, 0.2, busy_s=QUIET_TURN_S)
        return overloaded, shed_to, recovered, admission.state.fraction

    overloaded, shed_to, recovered, fraction = run(main())
    assert shed_to < 0.5  # a standing queue: most new requests refused
    tail = overloaded[len(overloaded) // 2 :]
    assert 0 < sum(tail) < len(tail)  # some admitted, some refused
    # Evenly: never a long run of refusals while a fraction is admitted.
    assert _longest_refusal_run(tail) <= int(1 / max(shed_to, 0.02)) + 1
    assert fraction == 1.0 and all(recovered)


def test_a_lag_below_target_sheds_nothing() -> None:
    async def main() -> list[bool]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=WINDOW_S)
        return await _arrivals(admission, 1.0, busy_s=TARGET_S * 0.9, per_iteration=50)

    assert all(run(main()))


def test_one_stall_and_its_burst_shed_nothing() -> None:
    """A pause (GC, a stopped process) followed by the burst it held back is not a queue: two
    late probes, even spanning more than the window, cut nothing."""

    async def main() -> list[bool]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=WINDOW_S)
        await _arrivals(admission, 0.05, busy_s=QUIET_TURN_S)
        await turn(0.3)  # the stall: one very late probe
        burst = [admission.admit() for _ in range(500)]
        await turn(WINDOW_S * 1.5)  # the held-back burst, answered in one long iteration
        burst += await _arrivals(admission, 0.2, busy_s=QUIET_TURN_S)
        return burst

    assert all(run(main()))


def test_a_third_late_probe_after_the_window_is_a_queue() -> None:
    """The same stall and burst, then one more late iteration: now the lag stands."""

    async def main() -> float:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=WINDOW_S)
        await _arrivals(admission, 0.05, busy_s=QUIET_TURN_S)
        await turn(0.3)
        [admission.admit() for _ in range(500)]
        await turn(WINDOW_S * 1.5)
        admission.admit()
        await turn(0.1)
        return admission.state.fraction

    assert run(main()) < 1.0


def test_probe_runs_only_while_requests_arrive() -> None:
    async def main() -> tuple[int, int, int, float]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=WINDOW_S)
        admission.admit()
        await asyncio.sleep(IDLE_STOP_S * 2)  # the probe stops once idle this long
        stopped_at = loop().timers_of(admission)
        await asyncio.sleep(60)  # idle: no timer at all
        idle = loop().timers_of(admission) - stopped_at
        # The next requests start it again: a flood is measured and shed as before.
        await _arrivals(admission, 1.0, busy_s=0.1, per_iteration=200)
        return stopped_at, idle, loop().timers_of(admission) - stopped_at, admission.state.fraction

    stopped_at, idle, restarted, fraction = run(main())
    assert 0 < stopped_at <= IDLE_STOP_S * 2 / 0.01 + 2  # one probe per interval at most
    assert idle == 0
    assert restarted > 0 and fraction < 0.5


def test_the_request_right_after_a_flood_is_admitted() -> None:
    """The flood ends with the fraction low; the lag is back under target but not yet drained:
    lone requests, one per probe interval, are admitted at once while the fraction, growing
    back step by step, alone would refuse most of them."""

    async def main() -> tuple[float, list[bool], float]:
        admission = LagAdmission(target_lag_s=TARGET_S, window_s=WINDOW_S)
        await _arrivals(admission, 1.0, busy_s=0.1, per_iteration=200)
        shed_to = admission.state.fraction
        await turn(TARGET_S)  # the last probe: a lag under target, not drained
        lone = []
        for _ in range(5):
            lone.append(admission.admit())
            await turn(TARGET_S)
        return shed_to, lone, admission.state.fraction

    shed_to, lone, fraction = run(main())
    assert shed_to < 0.1
    assert all(lone)
    assert fraction < 0.5  # the fraction has not recovered: the rule admitted them
