"""Which applicants a canary challenger answers: a stable share of each applicant in [0, 1).

The share is a hash of the applicant's encoded row (the float32 features the models score,
a function of the 13 form fields only, the same through every route and body format), so the
same applicant always gets the same model, on every worker and after every restart; a canary
fraction F sends the applicants whose share is below F to the challenger. Raising F keeps every
applicant the challenger already answered (their shares stay below the new F).

The hash: CRC-32 (zlib's, the same on every platform) of the row's little-endian float32 bytes,
spread over 64 bits by Fibonacci hashing (times 2^64/golden ratio, mod 2^64), whose top bits
mix every bit of the CRC; the top 53 bits are the share. It decides routing, not security: an
applicant who could pick their own share could as well pick their own values. It runs on every
single-applicant request of a canary, where 8 bytes of blake2b took 0.92 µs a call and this
takes 0.48 µs (python -m bench.canary_hash).
"""

import math
import zlib

import numpy as np
import numpy.typing as npt

from runners.base import FeatureMatrix

SHARE_BITS = 53  # exact in a float64, so a share is never rounded up to 1.0
SCALE = float(2**SHARE_BITS)
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, odd: multiplying by it permutes 64 bits
_MASK = 2**64 - 1
_crc32 = zlib.crc32
_FLOAT32_LE = np.dtype("<f4")


def applicant_shares(features: FeatureMatrix) -> npt.NDArray[np.float64]:
    """One share in [0, 1) per row."""
    # + 0.0 turns -0.0 into 0.0: both encode the same applicant, so one byte pattern.
    rows = np.ascontiguousarray(features, dtype=_FLOAT32_LE) + np.float32(0.0)
    data = memoryview(rows.tobytes())
    width = features.shape[1] * 4
    crcs = np.fromiter(
        (_crc32(data[start : start + width]) for start in range(0, len(data), width)),
        dtype=np.uint64,
        count=len(features),
    )
    spread = crcs * np.uint64(_GOLDEN)  # mod 2^64: NumPy's unsigned products wrap
    return (spread >> np.uint64(64 - SHARE_BITS)).astype(np.float64) / SCALE


def canary_rows(features: FeatureMatrix, fraction: float) -> npt.NDArray[np.bool_]:
    """The rows the challenger answers at canary fraction `fraction`."""
    if fraction <= 0.0:
        return np.zeros(len(features), dtype=np.bool_)
    return applicant_shares(features) < fraction


def share_limit(fraction: float) -> int:
    """The integer `challenger_answers` compares a row's spread hash with: below it exactly
    when the row's share is below `fraction`. A share is the spread hash's top SHARE_BITS bits
    (an integer s over 2^SHARE_BITS), and s < fraction * 2^SHARE_BITS (an exact float) holds
    for an integer s exactly when s < ceil(fraction * 2^SHARE_BITS), that is when the hash is
    below that ceiling shifted back into place: no shift or float per request."""
    return math.ceil(min(max(fraction, 0.0), 1.0) * SCALE) << (64 - SHARE_BITS)


def challenger_answers(row: FeatureMatrix, limit: int) -> bool:
    """Whether the challenger answers the one applicant of `row` (a 1-row matrix) at the
    fraction whose `share_limit` is `limit`: the share `applicant_shares` computes, from the
    same bytes, without array arithmetic (this runs on every single-applicant request of a
    canary: 0.48 µs, python -m bench.canary_hash)."""
    dtype = row.dtype
    if dtype is not _FLOAT32_LE and dtype != _FLOAT32_LE:  # the encoder's rows are float32
        row = row.astype(_FLOAT32_LE)
    data = row.tobytes()  # C order, whatever the row's strides
    # Only -0.0 needs the + 0.0 of `applicant_shares`: it is the one float32 a form can give
    # whose high byte is 0x80 (besides negatives below 2^-126, for which the extra step is
    # merely redundant); little-endian, every 4th byte from the 4th is a high byte.
    if 0x80 in data[3::4]:
        data = (row + np.float32(0.0)).tobytes()
    return _crc32(data) * _GOLDEN & _MASK < limit
