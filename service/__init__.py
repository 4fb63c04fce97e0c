__version__ = "0.1.0"  # the project's version (pyproject.toml; tests check they agree)
