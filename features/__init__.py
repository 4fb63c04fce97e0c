"""The applicant feature schema and the vectorised encoder shared by export/ and service/."""

# The project's version, written only here: the server's distribution (pyproject.toml), the
# client's (client/pyproject.toml) and the server at run time (service.__version__) read it.
__version__ = "0.1.0"
