"""The CreditScoring data, prepared exactly as the course (ML Zoomcamp module 6) prepares it."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from features.schema import (
    CATEGORY_CODES,
    FIELDS,
    MISSING_MONEY_VALUE,
    MONEY_FIELDS_WITH_MISSING,
    STATUS_CODES,
)

DATA_PATH = Path(__file__).parent / "data" / "CreditScoring.csv"


@dataclass(frozen=True)
class DatasetSplit:
    """A seeded 60/20/20 split; the final model trains on train + validation."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    @property
    def full_train(self) -> pd.DataFrame:
        return pd.concat([self.train, self.validation]).reset_index(drop=True)


def data_sha256(path: Path = DATA_PATH) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_applicants(path: Path = DATA_PATH) -> pd.DataFrame:
    """Lower-case columns, named categories, missing money as 0, rows of unknown status dropped."""
    df = pd.read_csv(path)
    df.columns = df.columns.str.lower()
    df["status"] = df["status"].map(STATUS_CODES)
    for column, codes in CATEGORY_CODES.items():
        df[column] = df[column].map(codes)
    for column in MONEY_FIELDS_WITH_MISSING:
        df[column] = df[column].replace(to_replace=MISSING_MONEY_VALUE, value=np.nan)
    df = df[df["status"] != "unk"].reset_index(drop=True)
    return df.fillna(0)


def split_applicants(df: pd.DataFrame, seed: int = 1) -> DatasetSplit:
    full_train, test = train_test_split(df, test_size=0.2, random_state=seed)
    train, validation = train_test_split(full_train, test_size=0.25, random_state=seed)
    return DatasetSplit(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=test.reset_index(drop=True),
    )


def applicant_records(df: pd.DataFrame) -> list[dict[str, object]]:
    """Rows as the dicts a client would send (the 13 form fields, no status)."""
    return df[list(FIELDS)].to_dict(orient="records")


def default_labels(df: pd.DataFrame) -> np.ndarray:
    return (df["status"] == "default").astype(int).to_numpy()
