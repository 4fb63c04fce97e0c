"""The metrics buffer writes on a loop timer (service/metrics.py), driven here in virtual time
(tests/virtual_time.py): observations reach the Prometheus children one flush interval after
the first of them, all together, and the timer runs only while there is something to write."""

import asyncio

import prometheus_client as prom

from service.metrics import MetricsBuffer
from tests.virtual_time import loop, run

INTERVAL_S = 1.0


def _value(metric: prom.Counter | prom.Histogram, suffix: str) -> float:
    (family,) = metric.collect()
    return sum(s.value for s in family.samples if s.name == family.name + suffix)


def test_observations_are_written_together_one_interval_after_the_first() -> None:
    histogram = prom.Histogram("flush_test_seconds", "h", buckets=(0.1, 1.0), registry=None)
    counter = prom.Counter("flush_test", "c", registry=None)
    gauges_set_at: list[float] = []

    async def main() -> list[tuple[float, float, float]]:
        buffer = MetricsBuffer(flush_interval_s=INTERVAL_S)
        buffer.before_flush(lambda: gauges_set_at.append(loop().time()))
        buffered_histogram, buffered_counter = buffer.histogram(histogram), buffer.counter(counter)
        seen = []

        def look() -> None:
            seen.append((loop().time(), _value(histogram, "_count"), _value(counter, "_total")))

        buffered_histogram.observe(0.05)
        buffered_counter.count += 1
        buffer.touch()
        await asyncio.sleep(INTERVAL_S * 0.6)
        buffered_histogram.observe(0.5)
        buffered_counter.count += 2
        buffer.touch()  # a flush is already coming: no second timer
        look()
        await asyncio.sleep(INTERVAL_S * 0.5)  # past the first observation's interval
        look()
        await asyncio.sleep(INTERVAL_S * 5)
        look()
        return seen

    seen = run(main())
    assert [(count, total) for _, count, total in seen] == [(0, 0), (2, 3), (2, 3)]
    assert gauges_set_at == [INTERVAL_S]  # one flush, at the first observation's interval


def test_the_timer_runs_only_while_there_is_something_to_write() -> None:
    counter = prom.Counter("idle_flush_test", "c", registry=None)

    async def main() -> tuple[int, int, int]:
        buffer = MetricsBuffer(flush_interval_s=INTERVAL_S)
        buffer.counter(counter).count += 1
        buffer.touch()
        await asyncio.sleep(INTERVAL_S * 1.5)
        after_one = loop().timers_of(buffer)
        await asyncio.sleep(INTERVAL_S * 60)  # nothing observed: no timer
        idle = loop().timers_of(buffer) - after_one
        buffer.counter(counter).count += 1
        buffer.touch()
        await asyncio.sleep(INTERVAL_S * 1.5)
        return after_one, idle, loop().timers_of(buffer) - after_one

    after_one, idle, again = run(main())
    assert (after_one, idle, again) == (1, 0, 1)
    assert _value(counter, "_total") == 2
