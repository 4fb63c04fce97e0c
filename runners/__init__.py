"""Model execution and batching: knows float32 arrays, not HTTP or Pydantic.

Importing the package first imports xgboost without its scikit-learn wrappers (see
runners.lean_imports): every module that imports xgboost lives here, so no process that
serves or scores pays for scikit-learn's import.
"""

from runners.lean_imports import import_xgboost_lean

import_xgboost_lean()
