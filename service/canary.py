"""Which applicants a canary challenger answers: a stable share of each applicant in [0, 1).

The share is a hash of the applicant's encoded row (the float32 features the models score,
a function of the 13 form fields only, the same through every route and body format), so the
same applicant always gets the same model, on every worker and after every restart; a canary
fraction F sends the applicants whose share is below F to the challenger. Raising F keeps every
applicant the challenger already answered (their shares stay below the new F).
"""

import hashlib

import numpy as np
import numpy.typing as npt

from runners.base import FeatureMatrix

SCALE = float(2**53)  # 53 bits of the hash: exact in a float64, never rounded up to 1.0
_blake2b = hashlib.blake2b


def applicant_shares(features: FeatureMatrix) -> npt.NDArray[np.float64]:
    """One share in [0, 1) per row: a hash (8 bytes of blake2b) of the row's little-endian
    float32 bytes."""
    # + 0.0 turns -0.0 into 0.0: both encode the same applicant, so one byte pattern.
    data = (np.ascontiguousarray(features, dtype="<f4") + np.float32(0.0)).tobytes()
    width = features.shape[1] * 4
    return np.fromiter(
        (_share(data[start : start + width]) for start in range(0, len(data), width)),
        dtype=np.float64,
        count=len(features),
    )


def _share(row: bytes) -> float:
    # The first 8 bytes of blake2b-512: half the time of blake2b(digest_size=8) (whose keyword
    # call costs more than the hash of 116 bytes) and as good a hash.
    return (int.from_bytes(_blake2b(row).digest()[:8], "little") >> 11) / SCALE


def canary_rows(features: FeatureMatrix, fraction: float) -> npt.NDArray[np.bool_]:
    """The rows the challenger answers at canary fraction `fraction`."""
    if fraction <= 0.0:
        return np.zeros(len(features), dtype=np.bool_)
    return applicant_shares(features) < fraction


def challenger_answers(row: FeatureMatrix, fraction: float) -> bool:
    """Whether the challenger answers the one applicant of `row` (a 1-row matrix): its share as
    `applicant_shares` computes it, from the same bytes, without array arithmetic in the common
    case (this runs on every single-applicant request of a canary)."""
    data = np.ascontiguousarray(row, dtype="<f4").tobytes()
    # Only -0.0 needs the + 0.0 of `applicant_shares`: it is the one float32 a form can give
    # whose high byte is 0x80 (besides negatives below 2^-126, for which the extra step is
    # merely redundant); little-endian, every 4th byte from the 4th is a high byte.
    if 0x80 in data[3::4]:
        data = (np.ascontiguousarray(row, dtype="<f4") + np.float32(0.0)).tobytes()
    return _share(data) < fraction
