"""Access lines for the front door's routes (CREDIT_RISK_ACCESS_LOG), on BentoML's
`bentoml.access` logger in the format of BentoML's access-log middleware, which sees only the
requests the door passes on."""

import logging

from starlette.types import Scope

logger = logging.getLogger("bentoml.access")


def log_access(scope: Scope, status: int, length: int, seconds: float) -> None:
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "_"
    logger.info(
        "%s (scheme=%s,method=%s,path=%s) (status=%d,length=%d) %.3fms",
        address,
        scope.get("scheme", "http"),
        scope["method"],
        scope["path"],
        status,
        length,
        seconds * 1000,
    )
