"""Vectorised bootstrap kernels: a metric on many resamples at once.

A kernel is ``prepare(p, y, **kwargs) -> resample`` where ``resample(idx)``
takes int64 indices [R, N] (on the data's device) and returns the metric on each
of the R resampled test sets, float [R]. ``prepare`` computes per-sample
quantities once; ``resample`` only gathers and reduces.
"""

from __future__ import annotations

from typing import Callable

import torch

from prunecheck.metrics._validation import accumulation_dtype
from prunecheck.metrics.classification import (
    _bin_index,
    _check_n_bins,
    _confidence,
    _correct,
    _per_sample_accuracy,
    _per_sample_brier,
    _per_sample_entropy,
    _per_sample_nll,
    _true_class_prob,
)
from prunecheck.metrics.sparsification import _check_steps, _errors_removing_most_uncertain

Resample = Callable[[torch.Tensor], torch.Tensor]
Prepare = Callable[..., Resample]


def per_sample_mean(per_sample: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]) -> Prepare:
    """Kernel for a metric that is the mean of a per-sample value (accuracy, NLL, Brier)."""

    def prepare(p: torch.Tensor, y: torch.Tensor | None) -> Resample:
        values = per_sample(p, y)
        return lambda idx: values[idx].mean(dim=-1)

    return prepare


accuracy_kernel = per_sample_mean(_per_sample_accuracy)
nll_kernel = per_sample_mean(_per_sample_nll)
brier_kernel = per_sample_mean(_per_sample_brier)
entropy_kernel = per_sample_mean(lambda p, y: _per_sample_entropy(p))


def ece_kernel(p: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> Resample:
    """ECE of each resample from per-sample (bin, confidence, correct), one scatter-add."""
    n_bins = _check_n_bins(n_bins)
    conf = _confidence(p)
    gap = _correct(p, y).to(conf.dtype) - conf  # sum over a bin = correct_sum - conf_sum
    bins = _bin_index(conf, n_bins)

    def resample(idx: torch.Tensor) -> torch.Tensor:
        rows, n = idx.shape
        offset = torch.arange(rows, device=idx.device)[:, None] * n_bins
        flat = (bins[idx] + offset).reshape(-1)
        sums = torch.zeros(rows * n_bins, dtype=gap.dtype, device=gap.device)
        sums.index_add_(0, flat, gap[idx].reshape(-1))
        return sums.view(rows, n_bins).abs().sum(dim=1) / n

    return resample


def ause_kernel(p: torch.Tensor, y: torch.Tensor, uncertainty: torch.Tensor | None = None, steps: int = 50) -> Resample:
    """AUSE of each resample: batched sorts and searchsorted along the last dimension."""
    steps = _check_steps(steps)
    dtype = accumulation_dtype(p.device)
    correct = _correct(p, y)
    u_pred = (1.0 - _confidence(p)) if uncertainty is None else uncertainty.to(dtype)
    u_oracle = 1.0 - _true_class_prob(p, y)
    fractions = torch.arange(steps, dtype=dtype, device=p.device) / steps

    def resample(idx: torch.Tensor) -> torch.Tensor:
        hit = correct[idx]
        gap = _errors_removing_most_uncertain(u_pred[idx], hit, steps) - _errors_removing_most_uncertain(
            u_oracle[idx], hit, steps
        )
        return torch.trapezoid(gap, x=fractions, dim=-1)

    return resample
