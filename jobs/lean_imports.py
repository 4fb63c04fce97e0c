"""Imports that must happen before anything else in the job's processes (driver and executors)."""

import sys


def import_xgboost_lean() -> None:
    """Import xgboost without its scikit-learn wrappers, which the job never uses: xgboost
    imports scikit-learn (and with it most of SciPy) when it can, which costs seconds per
    executor Python worker; with `sklearn` marked absent it falls back to stand-in classes.
    A process that already imported either is left as it is."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # import of sklearn now fails
    try:
        import xgboost  # noqa: F401
    finally:
        del sys.modules["sklearn"]
