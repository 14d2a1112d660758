"""Corrupted views of image datasets (SPEC 5): generated, released, blurred.

Importing this package is cheap: the name tables are loaded eagerly, everything
that needs torch, scikit-image or imagecorruptions on first attribute access.

Public API:
    BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, ALL_CORRUPTIONS, resolve_corruptions
    corrupt_images, CorruptedDataset, GENERATOR_VERSION          (generate)
    BlurredDataset, gaussian_blur_batch                          (blur)
    load_cifar_c, load_imagenet_c, available_released_corruptions (released)
    load_imagecorruptions, corruption_function                   (compat)
    PROFILES, resolve_profile, parameters                          (profiles: CIFAR-C / ImageNet-C constants)
"""

from __future__ import annotations

import importlib
from typing import Any

from prunecheck.core.corruption_names import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    resolve_corruptions,
)

_LAZY = {
    "corrupt_images": "generate",
    "CorruptedDataset": "generate",
    "GENERATOR_VERSION": "generate",
    "BlurredDataset": "blur",
    "gaussian_blur_batch": "blur",
    "load_cifar_c": "released",
    "load_imagenet_c": "released",
    "available_released_corruptions": "released",
    "load_imagecorruptions": "compat",
    "corruption_function": "compat",
}

__all__ = [
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "resolve_corruptions",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"prunecheck.data.corruptions.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'prunecheck.data.corruptions' has no attribute {name!r}")
