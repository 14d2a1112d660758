"""Pruning: the seed papers' methods, iterative prune-retrain, and family building.

- :mod:`~prunecheck.pruning.methods`: ``global_magnitude`` (WT), ``random_unstructured``,
  ``l1_filter`` (FT), ``random_channels``, ``bn_scale``, ``ebn_magnitude``, ``hrank``,
  and the :func:`prune` dispatch over :data:`METHODS`.
- :mod:`~prunecheck.pruning.masks`: :func:`keep_mask` keeps pruned weights at zero
  during fine-tuning.
- :mod:`~prunecheck.pruning.iterative`: :func:`iterative_prune` (seed 002, Alg. 1).
- :mod:`~prunecheck.pruning.family`: :func:`build_family` writes state dicts and a
  ``prunecheck.toml`` snippet (used by ``prunecheck prune``,
  :mod:`~prunecheck.pruning.command`).

Names are imported lazily, so ``prunecheck.pruning.command`` (the CLI wiring)
does not import torch until a command runs. See ``docs/pruning.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "METHODS", "UNSTRUCTURED_METHODS", "STRUCTURED_METHODS", "DATA_METHODS",
            "PruneReport", "PruneResult", "prune", "prune_with_report", "check_ratio",
            "global_magnitude", "random_unstructured", "l1_filter", "random_channels",
            "bn_scale", "ebn_magnitude", "ebn_expected_relu", "hrank",
        ),
        "methods",
    ),
    **dict.fromkeys(
        ("keep_mask", "apply_keep_mask", "mask_violations", "mask_sparsity", "weight_mask"), "masks"
    ),
    **dict.fromkeys(("PruneStep", "FineTune", "iterative_prune", "check_ratios"), "iterative"),
    **dict.fromkeys(("build_family", "member_names"), "family"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prunecheck.pruning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"prunecheck.pruning.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
