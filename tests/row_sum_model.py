"""A stand-in model for batcher tests: row sums, so each caller can check its own rows.

Its first `held_calls` calls each signal `entered[i]` and then wait for `released[i]`, so a test
can hold the model thread in a known state with events instead of racing it with sleeps.
"""

import asyncio
import threading

import numpy as np


class CountingModel:
    def __init__(self, held_calls: int = 0) -> None:
        self.calls: list[int] = []
        self.entered = [threading.Event() for _ in range(held_calls)]
        self.released = [threading.Event() for _ in range(held_calls)]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        index = len(self.calls)
        self.calls.append(len(features))
        if index < len(self.entered):
            self.entered[index].set()
            if not self.released[index].wait(60):
                raise TimeoutError(f"call {index} was never released")
        return features.sum(axis=1).astype(np.float32)

    def release_all(self) -> None:
        for event in self.released:
            event.set()


async def until_set(event: threading.Event, timeout_s: float = 30) -> None:
    """Wait on the loop (without blocking it) until a thread sets `event`."""
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, event.wait, timeout_s):
        raise TimeoutError("event never set")
