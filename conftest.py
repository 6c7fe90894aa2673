"""The repository root's pytest configuration: notebook claims under nbval (see helpers/pytest_claims.py)."""

pytest_plugins = ["helpers.pytest_claims"]
