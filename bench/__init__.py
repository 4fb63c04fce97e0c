"""Benchmark suites: in-process (pytest-benchmark) and HTTP (Locust). Nothing imports bench/."""
