"""What deciding a canary's applicant costs (issue 24): `service.canary.challenger_answers` on
one encoded row, as every single-applicant request of a canary runs it, against blake2b of the
same bytes (the hash it replaced), and `applicant_shares` per row of a 100,000-row batch.
Median of alternating rounds, nanoseconds a call, in one process.

    python -m bench.canary_hash            # ~20 s
"""

import argparse
import hashlib
import statistics
import timeit
from collections.abc import Callable

import numpy as np

from service.canary import SCALE, applicant_shares, challenger_answers, share_limit


def _blake2b_answers(row: np.ndarray, fraction: float) -> bool:
    """The previous hash (stop 32): 8 bytes of blake2b-512, with the same -0.0 step."""
    data = np.ascontiguousarray(row, dtype="<f4").tobytes()
    if 0x80 in data[3::4]:
        data = (np.ascontiguousarray(row, dtype="<f4") + np.float32(0.0)).tobytes()
    share = (int.from_bytes(hashlib.blake2b(data).digest()[:8], "little") >> 11) / SCALE
    return share < fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    row = (rng.random((1, 29)) * 100).astype(np.float32)
    limit = share_limit(0.05)
    cases: dict[str, Callable[[], object]] = {
        "challenger_answers (crc32)": lambda: challenger_answers(row, limit),
        "blake2b, as before": lambda: _blake2b_answers(row, 0.05),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for number in range(args.rounds):
        for name in list(cases)[number % 2 :] + list(cases)[: number % 2]:
            seconds = timeit.timeit(cases[name], number=args.calls)
            times[name].append(seconds / args.calls * 1e9)
    for name, values in times.items():
        print(f"{name:28s} {statistics.median(values):6.0f} ns a call")
    batch = (rng.random((100_000, 29)) * 100).astype(np.float32)
    seconds = min(timeit.repeat(lambda: applicant_shares(batch), number=1, repeat=3))
    print(f"{'applicant_shares':28s} {seconds / len(batch) * 1e9:6.0f} ns a row (100,000 rows)")


if __name__ == "__main__":
    main()
