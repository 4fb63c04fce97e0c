"""Re-exports features.thresholds, the one thresholds module (kept for existing imports)."""

from features.thresholds import INVALID, ROW_STATUSES, STATUSES, Thresholds

__all__ = ["INVALID", "ROW_STATUSES", "STATUSES", "Thresholds"]
