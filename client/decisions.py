"""The server's answers for one applicant and for a batch, parsed and checked."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

Status = Literal["APPROVED", "MAYBE", "DECLINED"]


class Decision(BaseModel):
    """One applicant's decision, as /classify and /classify_batch answer it."""

    model_config = ConfigDict(frozen=True)

    status: Status
    probability: float  # of default, from 0 to 1
    model: str  # the tag of the model that decided


DECISIONS = TypeAdapter(list[Decision])
