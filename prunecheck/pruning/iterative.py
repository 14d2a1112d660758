"""Iterative prune-retrain (seed 002, Algorithm 1 PRUNERETRAIN).

For each cumulative target ratio r_1 < r_2 < ...: prune the previous step's
fine-tuned model further to r_k (line 5: already-zero weights count as pruned,
so every step only adds zeros and the masks are nested), keep a snapshot of the
pruned model *before* fine-tuning (the pruning-instability gate, seed 004,
compares it with the parent), then fine-tune it with the user's callable under
:func:`~prunecheck.pruning.keep_mask` (line 6) and continue from the result.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from prunecheck.nn.layers import check_module
from prunecheck.pruning.masks import apply_keep_mask, keep_mask, mask_violations
from prunecheck.pruning.methods import PruneReport, check_ratio, prune_with_report

__all__ = ["PruneStep", "FineTune", "iterative_prune", "check_ratios"]

#: ``finetune(model, mask) -> model``: trains a pruned model, keeping ``mask``'s zeros.
FineTune = Callable[[nn.Module, dict[str, torch.Tensor]], nn.Module]


@dataclass(frozen=True, eq=False)
class PruneStep:
    """One prune-retrain cycle.

    Attributes:
        ratio: The cumulative target ratio of this step.
        pre_finetune: The model right after pruning, before fine-tuning.
        finetuned: The model after fine-tuning (the same object as
            ``pre_finetune`` when no fine-tuning was done).
        mask: The keep-mask of this step (``{parameter name: bool}``).
        report: Sparsity counts of the pre-fine-tune model.
    """

    ratio: float
    pre_finetune: nn.Module
    finetuned: nn.Module
    mask: dict[str, torch.Tensor]
    report: PruneReport | None = None


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """Validate cumulative target ratios: non-empty, each in [0, 1), strictly increasing.

    Raises:
        ValueError: Naming the offending position and value.
    """
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence):
        raise ValueError(f"ratios: expected a sequence of prune ratios, found {type(ratios).__name__}")
    if not ratios:
        raise ValueError("ratios: expected at least one prune ratio, found none")
    values = tuple(check_ratio(r, f"ratios[{i}]") for i, r in enumerate(ratios))
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise ValueError(
                f"ratios[{i}]: expected cumulative ratios in increasing order, "
                f"found {values[i]} after {values[i - 1]}"
            )
    return values


def iterative_prune(
    parent: nn.Module,
    method: str,
    ratios: Sequence[float],
    finetune: FineTune | None = None,
    *,
    strict: bool = True,
    **kwargs: Any,
) -> list[PruneStep]:
    """Prune ``parent`` step by step to each cumulative ratio, fine-tuning in between.

    Args:
        parent: The trained network (not modified).
        method: A name of :data:`prunecheck.pruning.METHODS`.
        ratios: Cumulative targets, increasing, each in [0, 1).
        finetune: ``finetune(model, mask) -> model``; it receives a copy of the
            pruned model and runs inside :func:`keep_mask` (gradients of pruned
            entries are zeroed). ``None``: no fine-tuning (each step prunes the
            previous pruned model).
        strict: If the fine-tuned model has non-zero entries where the mask
            says zero (a fine-tune that replaced the module or bypassed the
            mask), raise; with ``strict=False`` re-apply the mask instead.
        **kwargs: Options of the method (``seed``, ``exclude``, ``batches`` ...).

    Returns:
        One :class:`PruneStep` per ratio.

    Raises:
        ValueError: Bad ratios/method/options, or (strict) a fine-tune that
            revived pruned weights or did not return a module.
    """
    check_module(parent, "parent")
    values = check_ratios(ratios)
    current = parent
    steps: list[PruneStep] = []
    for i, ratio in enumerate(values):
        result = prune_with_report(current, method, ratio, **kwargs)
        pre = result.module
        if finetune is None:
            tuned = pre
        else:
            work = copy.deepcopy(pre)
            with keep_mask(work, result.mask):
                tuned = finetune(work, result.mask)
            if tuned is None:
                tuned = work  # a fine-tune that trains in place and returns nothing
            if not isinstance(tuned, nn.Module):
                raise ValueError(
                    f"finetune (step {i}, ratio {ratio}): expected it to return the trained "
                    f"torch.nn.Module, found {type(tuned).__name__}"
                )
            revived = mask_violations(tuned, result.mask)
            if revived:
                if strict:
                    raise ValueError(
                        f"finetune (step {i}, ratio {ratio}): pruned entries became non-zero "
                        f"{revived}; train inside prunecheck.pruning.keep_mask(model, mask) or call "
                        "apply_keep_mask after each optimizer step (or pass strict=False)"
                    )
                apply_keep_mask(tuned, result.mask)
            tuned.eval()
        steps.append(PruneStep(ratio, pre, tuned, result.mask, result.report))
        current = tuned
    return steps
