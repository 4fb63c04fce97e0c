"""Bulk scoring: one large matrix, split into pieces, each routed to the engine that is fastest
at its size (ONNX Runtime wins at few rows, native XGBoost at many), the pieces run on up to
`threads` threads at once.

Both engines release the GIL while they score and are safe to call from several threads at once
(XGBoost documents `inplace_predict` as lock-free), so one request's rows split across threads
use as many cores as there are threads, with each engine call on one thread of its own. Engine
threads stay at one (no OpenMP team per call): the parallelism is the split, so threads never
multiply (the worker's engine threads times an OpenMP team), and a piece waiting for a core only
delays its own rows.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from runners.base import FeatureMatrix, Probabilities, Runner

# Below this many rows a piece is not worth a thread of its own: a thread hop costs tens of
# microseconds, XGBoost scores ~1,000 rows in about a millisecond.
MIN_PIECE_ROWS = 8_192
PIECES_PER_THREAD = 4


@dataclass(frozen=True)
class ChunkedPredictor:
    small: Runner  # used below `large_min_rows`
    large: Runner  # used from `large_min_rows` up
    large_min_rows: int
    chunk_rows: int  # the most rows of one engine call
    threads: int = 1  # engine calls of one request running at once (the pieces' threads)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.threads > 1:  # threads start on first use, not here
            pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bulk-piece")
            object.__setattr__(self, "_pool", pool)

    def engine_for(self, rows: int) -> Runner:
        return self.large if rows >= self.large_min_rows else self.small

    def pieces(self, rows: int) -> list[tuple[int, int]]:
        """(start, stop) of each engine call for `rows` rows: equal pieces of at most
        `chunk_rows`; with several threads, PIECES_PER_THREAD per thread where each keeps
        MIN_PIECE_ROWS, so a thread that gets less CPU (other processes' load) takes fewer
        pieces instead of holding the request up."""
        count = max(1, -(-rows // self.chunk_rows))
        if self.threads > 1:
            count = max(count, min(self.threads * PIECES_PER_THREAD, rows // MIN_PIECE_ROWS))
        bounds = np.linspace(0, rows, count + 1).astype(np.intp).tolist()
        return list(pairwise(bounds))

    def predict(self, features: FeatureMatrix) -> Probabilities:
        pieces = self.pieces(len(features))
        if len(pieces) == 1:
            return self.engine_for(len(features)).predict(features)
        out = np.empty(len(features), dtype=np.float32)

        def score(piece: tuple[int, int]) -> None:
            start, stop = piece
            out[start:stop] = self.engine_for(stop - start).predict(features[start:stop])

        started = []
        if self._pool is not None:
            try:
                for piece in pieces:
                    started.append(self._pool.submit(score, piece))
            except RuntimeError:  # closed: a replaced model finishing a request (below)
                pass
        for piece in pieces[len(started) :]:
            score(piece)  # one thread: no pool, or a closed one
        for done in started:
            done.result()  # re-raises an engine's error
        return out

    def close(self) -> None:
        """Stops the pieces' threads once the calls in progress end (without waiting); a later
        call scores its pieces one after another on the caller's thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
