"""Shared test setup.

In-process pytester runs drop every module first imported inside them, and some
native extensions (torch's dynamo and flop counter, which pull in triton) abort
or refuse to register twice when imported again in the same process. Importing
everything the suites use here keeps those modules loaded across pytester runs.
"""

import importlib
import pkgutil

import torch._dynamo  # noqa: F401
import torch.utils.flop_counter  # noqa: F401

import prunecheck

for _module in pkgutil.walk_packages(prunecheck.__path__, "prunecheck."):
    importlib.import_module(_module.name)

from prunecheck.corruptions.compat import load_imagecorruptions  # noqa: E402

load_imagecorruptions()
