from features import __version__  # the project's version, written once (features/__init__.py)

__all__ = ["__version__"]
