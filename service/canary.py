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


def applicant_shares(features: FeatureMatrix) -> npt.NDArray[np.float64]:
    """One share in [0, 1) per row: blake2b (8 bytes) of the row's little-endian float32 bytes."""
    rows = np.ascontiguousarray(features, dtype="<f4")
    rows = rows + np.float32(0.0)  # -0.0 and 0.0 encode the same applicant: one byte pattern
    width = rows.shape[1] * 4
    data = rows.tobytes()
    shares = np.empty(len(rows), dtype=np.float64)
    for i in range(len(rows)):
        digest = hashlib.blake2b(data[i * width : (i + 1) * width], digest_size=8).digest()
        shares[i] = (int.from_bytes(digest, "little") >> 11) / SCALE
    return shares


def canary_rows(features: FeatureMatrix, fraction: float) -> npt.NDArray[np.bool_]:
    """The rows the challenger answers at canary fraction `fraction`."""
    if fraction <= 0.0:
        return np.zeros(len(features), dtype=np.bool_)
    return applicant_shares(features) < fraction
