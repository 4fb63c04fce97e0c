"""Max concurrency at the front door: a worker answers at most `limit` requests of its routes at
once; one more gets 429 with Retry-After before its body is read (BentoML's `traffic.
max_concurrency`, CREDIT_RISK_MAX_CONCURRENCY, shared out among the workers as BentoML does)."""

import math

from service.errors import RequestError


def per_worker(max_concurrency: int, workers: int) -> int:
    """Each worker's share, rounded up (BentoML's own rule)."""
    return math.ceil(max_concurrency / workers)


class ConcurrencyLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def enter(self) -> None:
        """Count one more request in progress, or raise 429 when `limit` are."""
        if self.in_flight >= self.limit:
            raise RequestError(
                429, f"too many requests: {self.in_flight} in progress in this worker, its limit"
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
