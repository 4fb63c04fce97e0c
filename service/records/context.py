"""Who asked, on which route: set by the HTTP layers for the request being served, read when
its decisions are recorded (REQUEST_ID, the request id, lives in service.logs)."""

from contextvars import ContextVar

ROUTE: ContextVar[str] = ContextVar("credit_risk_route", default="-")
CLIENT: ContextVar[str] = ContextVar("credit_risk_client", default="-")  # the API key's name
