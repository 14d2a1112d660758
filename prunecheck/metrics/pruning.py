"""Metrics on a pruning family or a pruning step: prune potential, excess error, instability.

These take scalar accuracies / errors (fractions in [0, 1]) or short curves,
not probabilities; they are plain Python/numpy and return ``float``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prunecheck.metrics._validation import MetricInputError, check_scalar

#: Absolute slack on ``errors_k - parent_error <= delta`` so that a difference equal
#: to ``delta`` in decimal (e.g. 0.105 - 0.100 vs 0.005) counts as inclusive despite
#: binary rounding.
PRUNE_POTENTIAL_EPS = 1e-12


def _curve(values: Any, *, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor: a short curve, fine to bring to the host
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name}: expected a 1-D array of numbers, found {values!r}") from None
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise MetricInputError(f"{name}: expected a non-empty 1-D array, found shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise MetricInputError(f"{name}: expected finite values, found {arr[bad[0]]!r} at index {bad[0]}")
    return arr


def prune_potential(prune_ratios: Any, errors: Any, parent_error: float, delta: float = 0.005) -> float:
    """Largest prune ratio whose error stays within ``delta`` of the parent (seed 002, Def. 1).

    ``P = max { r_k : errors_k - parent_error <= delta }`` over the whole curve
    (inclusive, no interpolation, not required to be monotone); 0.0 when no
    ratio qualifies (the parent itself, ratio 0, always would). The comparison
    allows 1e-12 of floating-point slack (``PRUNE_POTENTIAL_EPS``).

    Args:
        prune_ratios: float [K], fractions of weights removed, in [0, 1].
        errors: float [K], 0-1 error of each pruned model on the same data, in [0, 1].
        parent_error: error of the unpruned parent, in [0, 1].
        delta: allowed excess error (default 0.005 = 0.5 percentage points), >= 0.

    Returns:
        The prune potential, in [0, 1].

    Example:
        >>> prune_potential([0.5, 0.7, 0.9], [0.101, 0.105, 0.2], 0.1)  # 0.105 - 0.1 <= 0.005
        0.7
    """
    ratios = _curve(prune_ratios, name="prune_ratios")
    errs = _curve(errors, name="errors")
    if ratios.shape != errs.shape:
        raise MetricInputError(
            f"errors: expected one error per prune ratio ({ratios.shape[0]}), found {errs.shape[0]}"
        )
    if ratios.min() < 0.0 or ratios.max() > 1.0:
        raise MetricInputError(f"prune_ratios: expected values in [0, 1], found {ratios.tolist()}")
    if errs.min() < 0.0 or errs.max() > 1.0:
        raise MetricInputError(f"errors: expected fractions in [0, 1], found {errs.tolist()}")
    parent = check_scalar(parent_error, name="parent_error", low=0.0, high=1.0)
    delta = check_scalar(delta, name="delta", low=0.0)
    ok = errs - parent <= delta + PRUNE_POTENTIAL_EPS
    return float(ratios[ok].max()) if ok.any() else 0.0


def excess_error(error_shifted: float, error_nominal: float) -> float:
    """Excess error under distribution shift, ``error_shifted - error_nominal`` (seed 002, Def. 2).

    Args:
        error_shifted: error on the shifted data (e.g. a corruption), in [0, 1].
        error_nominal: error on nominal data, in [0, 1].

    Returns:
        The excess error, in [-1, 1]. The corruption gate compares the pruned
        model's excess error with the parent's (pruned minus parent).

    Example:
        >>> round(excess_error(0.30, 0.08), 6)
        0.22
    """
    shifted = check_scalar(error_shifted, name="error_shifted", low=0.0, high=1.0)
    nominal = check_scalar(error_nominal, name="error_nominal", low=0.0, high=1.0)
    return shifted - nominal


def instability(acc_before: float, acc_after: float) -> float:
    """Pruning instability, ``(acc_before - acc_after) / acc_before`` (seed 004, Sec. 3).

    Args:
        acc_before: accuracy before the pruning step, in (0, 1].
        acc_after: accuracy right after the step (before any fine-tuning), in [0, 1].

    Returns:
        Relative accuracy drop: 0 when nothing changed, 1 when everything is
        lost, negative when the step improved accuracy.

    Example:
        >>> instability(0.8, 0.4)
        0.5
    """
    before = check_scalar(acc_before, name="acc_before", low=0.0, high=1.0)
    after = check_scalar(acc_after, name="acc_after", low=0.0, high=1.0)
    if before == 0.0:
        raise MetricInputError("acc_before: expected an accuracy > 0 (it is the denominator), found 0.0")
    return (before - after) / before
