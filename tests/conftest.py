"""Shared test setup.

In-process pytester runs drop modules first imported inside them; re-importing
torch's flop counter (which pulls in triton's native bindings) a second time in
one process aborts. Importing them here keeps them loaded across pytester runs.
"""

import torch.utils.flop_counter  # noqa: F401

import prunecheck.workspace  # noqa: F401
