"""A synthetic applicant lake for the Spark benchmark: real CreditScoring rows sampled with
replacement, an id and a branch column to carry, and a few invalid rows, in Parquet files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from export.dataset import load_applicants
from features.schema import FIELDS

ROWS_PER_FILE = 500_000
INVALID_SHARE = 0.001  # one row in a thousand breaks a rule
INTEGER_FIELDS = ("seniority", "time", "age", "expenses", "amount", "price")
MARKER = "_lake.json"


def make_lake(folder: Path, rows: int, *, seed: int = 0) -> Path:
    """`rows` applicants in files of ROWS_PER_FILE rows; reused when already made."""
    marker = folder / MARKER
    wanted = {"rows": rows, "seed": seed, "rows_per_file": ROWS_PER_FILE}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    source = load_applicants()[list(FIELDS)]
    rng = np.random.default_rng(seed)
    for part, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        n = min(ROWS_PER_FILE, rows - start)
        table = _applicants(source, rng, start, n)
        pq.write_table(table, folder / f"part-{part:05d}.parquet", row_group_size=n)
    marker.write_text(json.dumps(wanted))
    return folder


def _applicants(source: pd.DataFrame, rng: np.random.Generator, start: int, n: int) -> pa.Table:
    sample = source.iloc[rng.integers(0, len(source), n)].reset_index(drop=True)
    bad = rng.random(n) < INVALID_SHARE
    kinds = rng.integers(0, 3, n)
    columns: dict[str, pa.Array] = {
        "application_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "branch": pa.array(np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)]),
    }
    for name in FIELDS:
        values = sample[name].to_numpy()
        if name in INTEGER_FIELDS:
            values = values.astype(np.int64)
            if name == "age":
                values = np.where(bad & (kinds == 0), 12, values)  # too young
            columns[name] = pa.array(values)
        elif name == "home":
            values = np.where(bad & (kinds == 1), "castle", values)  # unknown category
            columns[name] = pa.array(values.astype(str))
        elif values.dtype.kind in "OU":
            columns[name] = pa.array(values.astype(str))
        else:
            mask = bad & (kinds == 2) if name == "income" else None  # a missing value
            columns[name] = pa.array(values.astype(np.float64), mask=mask)
    return pa.table(columns)
