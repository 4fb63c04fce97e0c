"""Batch jobs over data too big for one HTTP request: `python -m jobs.score` (Spark).

Importing the package first imports xgboost without its scikit-learn wrappers (see
runners.lean_imports): every executor Python worker imports this package before anything else.
"""

from runners.lean_imports import import_xgboost_lean

import_xgboost_lean()
