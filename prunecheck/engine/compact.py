"""Gate metrics of :class:`~prunecheck.engine.predictions.Predictions`, from rows or from per-sample summaries.

:func:`score` and :func:`paired_bootstrap` compute the metrics below from the
per-sample summaries (stored in a compact entry, or computed once from the rows),
with the metrics' own binning and sparsification kernels and the same bootstrap
index draws as :mod:`prunecheck.metrics`; other metrics are called on the rows:

=====================  ==========================================  =====================
metric                 per-sample inputs                           agreement with rows
=====================  ==========================================  =====================
accuracy               predicted == label                          identical
ece                    max p, predicted == label                   identical
ause (MSP or given u)  max p, p[label], predicted == label         identical
nll                    p[label]                                    identical
predictive_entropy     -Σ p log p                                  identical
brier                  Σp² - 2 p[label] + 1                        ≤ 1e-12 (float64 rounding)
=====================  ==========================================  =====================

"identical" means the same float64 operations on the same values; the tests
check it to 1e-12 on hypothesis inputs with exact 0/1 probabilities and ties.
Metrics of two models' rows (agreement, softmax distance) or of members
(disagreement, variance) need rows and raise :class:`RowsNotStoredError` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from prunecheck import metrics
from prunecheck.core.errors import RowsNotStoredError
from prunecheck.metrics._validation import MetricInputError
from prunecheck.metrics.bootstrap import BootstrapResult, _check_args, difference_interval, kernel_differences
from prunecheck.metrics.classification import NLL_CLAMP, _bin_index, _check_n_bins
from prunecheck.metrics.sparsification import _check_steps, _errors_removing_most_uncertain

if TYPE_CHECKING:
    from prunecheck.engine.predictions import Predictions


#: Metrics computable from summaries alone.
SUMMARY_METRICS = ("accuracy", "nll", "brier", "predictive_entropy", "ece", "ause")

Resample = Callable[[torch.Tensor], torch.Tensor]


def _prepare(metric: str, s: dict[str, torch.Tensor], **kwargs: Any) -> tuple[Callable[[], float], Resample]:
    """(full-data value, resampled values) of ``metric`` from per-sample tensors."""
    if metric in ("accuracy", "nll", "brier", "predictive_entropy"):
        if kwargs:
            raise MetricInputError(f"{metric}: expected no options, found {sorted(kwargs)}")
        values = {
            "accuracy": lambda: s["correct"].double(),
            "nll": lambda: -torch.log(s["label_prob"].clamp_min(NLL_CLAMP)),
            "brier": lambda: s["brier"],
            "predictive_entropy": lambda: s["entropy"],
        }[metric]()
        return (lambda: float(values.mean())), (lambda idx: values[idx].mean(dim=-1))
    if metric == "ece":
        n_bins = _check_n_bins(kwargs.pop("n_bins", 15))
        if kwargs:
            raise MetricInputError(f"ece: unexpected options {sorted(kwargs)}")
        conf = s["confidence"]
        gap = s["correct"].to(conf.dtype) - conf
        bins = _bin_index(conf, n_bins)

        def ece_of(idx: torch.Tensor) -> torch.Tensor:
            rows, n = idx.shape
            flat = (bins[idx] + torch.arange(rows)[:, None] * n_bins).reshape(-1)
            sums = torch.zeros(rows * n_bins, dtype=gap.dtype).index_add_(0, flat, gap[idx].reshape(-1))
            return sums.view(rows, n_bins).abs().sum(dim=1) / n

        def full() -> float:
            per_bin = torch.zeros(n_bins, dtype=gap.dtype).index_add_(0, bins, gap)
            return float(per_bin.abs().sum() / gap.shape[0])

        return full, ece_of
    if metric == "ause":
        steps = _check_steps(kwargs.pop("steps", 50))
        uncertainty = kwargs.pop("uncertainty", None)
        if kwargs:
            raise MetricInputError(f"ause: unexpected options {sorted(kwargs)}")
        correct = s["correct"]
        u_pred = (1.0 - s["confidence"]) if uncertainty is None else torch.as_tensor(uncertainty).double().cpu()
        u_oracle = 1.0 - s["label_prob"]
        fractions = np.arange(steps, dtype=np.float64) / steps

        def full() -> float:
            gap = _errors_removing_most_uncertain(u_pred, correct, steps) - _errors_removing_most_uncertain(
                u_oracle, correct, steps
            )
            return float(np.trapezoid(gap.numpy().astype(np.float64), fractions))

        def ause_of(idx: torch.Tensor) -> torch.Tensor:
            hit = correct[idx]
            gap = _errors_removing_most_uncertain(u_pred[idx], hit, steps) - _errors_removing_most_uncertain(
                u_oracle[idx], hit, steps
            )
            return torch.trapezoid(gap, x=torch.from_numpy(fractions), dim=-1)

        return full, ause_of
    raise RowsNotStoredError(
        f"metric {metric!r} needs class probabilities, but these predictions hold per-sample summaries "
        f"only (computable from summaries: {', '.join(SUMMARY_METRICS)})"
    )


def score(predictions: Predictions, metric: str, **kwargs: Any) -> float:
    """``metric`` of ``predictions``: the value of ``metrics.<metric>(probs, labels)``.

    Metrics in :data:`SUMMARY_METRICS` come from the per-sample summaries, which a
    rows entry computes (and validates) once: every further gate on the same
    predictions then costs O(N), not O(N x C).
    """
    info = metrics.metric_info(metric)
    # Label-free metrics keep the rows: their data (OOD) may have labels the summaries cannot index.
    if predictions.has_rows and (metric not in SUMMARY_METRICS or info.inputs != "probs_labels"):
        args = (predictions.probs, predictions.labels) if info.inputs == "probs_labels" else (predictions.probs,)
        return float(info.fn(*args, **kwargs))
    full, _ = _prepare(metric, predictions.per_sample, **kwargs)
    return full()


def paired_bootstrap(
    metric: str,
    parent: Predictions,
    pruned: Predictions,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    as_degradation: bool = False,
    metric_kwargs: dict[str, Any] | None = None,
) -> BootstrapResult:
    """:func:`prunecheck.metrics.paired_bootstrap` of two predictions of the same samples.

    Same index draws, percentiles and widening as the rows version, so a compact
    entry gives the interval the rows would.
    """
    info = metrics.metric_info(metric)
    rows = parent.has_rows and pruned.has_rows
    if metric not in SUMMARY_METRICS or (rows and info.inputs != "probs_labels"):
        return metrics.paired_bootstrap(
            metric, parent.probs, pruned.probs, parent.labels if info.inputs == "probs_labels" else None,
            n_resamples=n_resamples, confidence=confidence, seed=seed, as_degradation=as_degradation,
            metric_kwargs=metric_kwargs,
        )
    _check_args(n_resamples, confidence, seed)
    kwargs = dict(metric_kwargs or {})
    if "uncertainty" in kwargs:
        raise MetricInputError("metric_kwargs: a per-sample 'uncertainty' cannot be shared by parent and pruned model")
    full_parent, resample_parent = _prepare(metric, parent.per_sample, **dict(kwargs))
    full_pruned, resample_pruned = _prepare(metric, pruned.per_sample, **dict(kwargs))
    diffs = kernel_differences(resample_parent, resample_pruned, len(parent), n_resamples=n_resamples, seed=seed)
    sign = -1.0 if (as_degradation and info.higher_is_better) else 1.0
    return difference_interval(diffs, full_pruned() - full_parent(), confidence=confidence, as_degradation_sign=sign)
