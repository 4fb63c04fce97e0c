"""Bulk inputs for the client tests: the dataset's rows, repeated and shuffled, each with an
application id, so that an answer lined up with the wrong row is seen."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from features.schema import FIELDS

ROWS = 12_000  # several chunks of CHUNK_ROWS, the last one short
CHUNK_ROWS = 2_500


@dataclass(frozen=True)
class Applicants:
    table: pa.Table  # the 13 fields, then application_id (text) and branch (int)
    source_rows: np.ndarray  # row i is records[source_rows[i]]
    expected: np.ndarray  # in-process probability of row i

    @property
    def ids(self) -> list[str]:
        return self.table.column("application_id").to_pylist()


@pytest.fixture(scope="session")
def applicants(records, expected_probability) -> Applicants:
    rng = np.random.default_rng(13)
    source_rows = rng.permutation(ROWS) % len(records)
    columns: dict[str, object] = {name: [records[i][name] for i in source_rows] for name in FIELDS}
    columns["application_id"] = [f"A{n:06d}" for n in rng.permutation(ROWS)]
    columns["branch"] = rng.integers(0, 50, ROWS)
    return Applicants(pa.table(columns), source_rows, expected_probability[source_rows])
