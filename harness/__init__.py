"""Test and benchmark harness (not shipped): real servers on loopback, raw-socket clients."""
