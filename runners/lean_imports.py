"""Imports that must come before anything else in the serving and job processes."""

import sys


def import_xgboost_lean() -> None:
    """Import xgboost without its scikit-learn wrappers, which nothing here uses (models are
    Boosters): xgboost imports scikit-learn, and with it most of SciPy, when it can, 0.7 s of
    CPU in every process that imports it (each API worker, `bentoml serve`'s own process, each
    Spark executor's Python worker). With `sklearn` marked absent for that one import, xgboost
    falls back to stand-in classes; a later `import sklearn` (training) works as usual.
    A process that already imported either is left as it is."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # import of sklearn now fails
    try:
        import xgboost  # noqa: F401
    finally:
        del sys.modules["sklearn"]
