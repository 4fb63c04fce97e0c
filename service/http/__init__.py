"""The HTTP front door: the outermost ASGI app of every API worker.

It answers the scoring routes itself (one contract: the same validation, answers, error shape
and headers for every route) and hands everything else (docs, health, metrics) to BentoML's app.
"""
