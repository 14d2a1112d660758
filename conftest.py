# Intentionally thin: the prunecheck plugin registers through the pytest11 entry point
# (see pyproject.toml), so suites/ and tests/ get its fixtures without imports here.
