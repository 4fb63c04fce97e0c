"""The HTTP front door and the layers in front of it, in each API worker:
request_id.RequestIdMiddleware -> auth.ApiKeyMiddleware (with an API-key file) -> FrontDoor.

The front door answers the scoring routes itself (one contract: the same validation, answers,
error shape and headers for every route) and hands everything else (docs, health, metrics) to
BentoML's app.
"""
