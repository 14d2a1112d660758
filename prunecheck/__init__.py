"""prunecheck: pre-deployment gates for pruned neural networks.

Importing this package is cheap on purpose (no torch): the pytest plugin is
loaded by every pytest run in the environment.
"""

__version__ = "0.1.0"

# Bumped whenever a change alters predicted probabilities for the same
# (weights, spec, view); part of every prediction cache key.
ENGINE_VERSION = "1"
