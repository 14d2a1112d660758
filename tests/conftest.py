"""Shared test setup.

In-process pytester runs drop every module first imported inside them, and some
native extensions (torch's dynamo and flop counter, which pull in triton) abort
or refuse to register twice when imported again in the same process. Importing
everything the suites use here keeps those modules loaded across pytester runs.
"""

import importlib
import pkgutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401
import torch.utils.flop_counter  # noqa: E402,F401
import torchvision  # noqa: E402,F401

import prunecheck  # noqa: E402

for _module in pkgutil.walk_packages(prunecheck.__path__, "prunecheck."):
    importlib.import_module(_module.name)

from prunecheck.data.corruptions.compat import load_imagecorruptions  # noqa: E402

load_imagecorruptions()
