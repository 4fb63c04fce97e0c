"""Service tests use the session fixtures of tests/conftest.py (records, server, ...)."""
