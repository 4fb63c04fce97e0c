"""When to retry a request, and how long to wait first (no I/O here: the sync and async
clients share it and do their own sleeping).

Scoring is a pure function of the input, so a request can be sent again safely. Retried:
429 and 503 (the server sheds load and says when to come back in `Retry-After`), 502 and 504
(a proxy in front of restarting replicas), and answers that never came (connection refused,
reset, timed out). Everything else is final.
"""

import email.utils
import logging
import random
import time
from dataclasses import dataclass

import httpx

from client.errors import UnreachableError, error_from_response

logger = logging.getLogger(__name__)

REFUSALS = frozenset({429, 503})  # the server's own "come back later"
GATEWAY_ERRORS = frozenset({502, 504})  # a proxy's "no replica answered"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one request. Waits honour `Retry-After` (plus up to 20% jitter, so
    clients refused together do not all come back together), capped at `max_wait_s`; without
    the header they back off exponentially from `backoff_s`."""

    max_refusals: int = 8  # 429/502/503/504 answers retried before OverloadedError
    max_connection_errors: int = 3  # transport failures retried before UnreachableError
    max_wait_s: float = 30.0  # cap on one wait, whatever Retry-After asks
    backoff_s: float = 0.5  # first wait when the server gives no Retry-After


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Attempts:
    """One request's retry state. After each try, `after_answer` or `after_transport_error`
    either says how long to wait before the next try, returns None (the answer is final and
    good), or raises the error to give the caller."""

    def __init__(self, policy: RetryPolicy, what: str, *, row_offset: int = 0) -> None:
        self.policy = policy
        self.what = what
        self.row_offset = row_offset
        self.refusals = 0
        self.connection_errors = 0

    def after_answer(self, response: httpx.Response) -> float | None:
        status = response.status_code
        if status < 300:
            return None
        if status not in REFUSALS | GATEWAY_ERRORS:
            raise error_from_response(response, row_offset=self.row_offset)
        self.refusals += 1
        if self.refusals > self.policy.max_refusals:
            raise error_from_response(response, row_offset=self.row_offset, overloaded=True)
        wait = self._wait(retry_after_s(response), self.refusals)
        logger.info(
            "%s: %d from the server, retry %d of %d in %.2f s",
            self.what, status, self.refusals, self.policy.max_refusals, wait,
        )  # fmt: skip
        return wait

    def after_transport_error(self, error: httpx.TransportError) -> float:
        self.connection_errors += 1
        if self.connection_errors > self.policy.max_connection_errors:
            raise UnreachableError(
                f"{self.what}: no answer after {self.connection_errors} tries "
                f"({type(error).__name__}: {error})"
            ) from error
        wait = self._wait(None, self.connection_errors)
        logger.info(
            "%s: %s (%s), retry %d of %d in %.2f s",
            self.what, type(error).__name__, error, self.connection_errors,
            self.policy.max_connection_errors, wait,
        )  # fmt: skip
        return wait

    def _wait(self, asked_s: float | None, attempt: int) -> float:
        base = asked_s if asked_s is not None else self.policy.backoff_s * 2 ** (attempt - 1)
        return min(base * random.uniform(1.0, 1.2), self.policy.max_wait_s)
