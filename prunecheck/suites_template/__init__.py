"""The suites shipped with the package, for ``prunecheck init``.

The ``test_*.py`` files here are symlinks to the repository's top-level
``suites/`` (the one source); building a wheel stores their content, so every
install carries them. Edit ``suites/``, not these links.
"""
