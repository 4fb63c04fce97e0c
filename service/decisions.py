"""Probability -> APPROVED / MAYBE / DECLINED, with the configured thresholds."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

STATUSES = np.array(["APPROVED", "MAYBE", "DECLINED"], dtype=object)


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
