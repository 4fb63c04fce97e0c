"""Probability -> decision: APPROVED, MAYBE or DECLINED, with the configured thresholds; and
INVALID, the status of a row that was not scored (per-row verdicts on bulk input).

The one place where a probability becomes a status: the server (every route), the Spark job
and the monitoring counters all use it, so they can never disagree at a threshold.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

STATUSES: Final = np.array(["APPROVED", "MAYBE", "DECLINED"], dtype=object)
INVALID: Final = "INVALID"
# Statuses of a per-row answer: a level of 3 marks a row that broke a rule and was not scored.
ROW_STATUSES: Final[tuple[str, ...]] = (*STATUSES.tolist(), INVALID)
INVALID_LEVEL: Final = len(STATUSES)


@dataclass(frozen=True)
class Thresholds:
    maybe: float  # p above this is at least MAYBE
    declined: float  # p above this is DECLINED

    def status(self, probability: float) -> str:
        if probability > self.declined:
            return "DECLINED"
        if probability > self.maybe:
            return "MAYBE"
        return "APPROVED"

    def levels(self, probabilities: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
        """0, 1, 2 for APPROVED, MAYBE, DECLINED (positions in STATUSES)."""
        return (probabilities > self.maybe).astype(np.int8) + (probabilities > self.declined)

    def statuses(self, probabilities: npt.NDArray[np.float32]) -> list[str]:
        return STATUSES[self.levels(probabilities)].tolist()
