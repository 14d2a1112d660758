"""Sparsification curves and AUSE for classification (seed 000, Sec. 5 and Alg. 1).

Reading fixed by SPEC 3: prediction = argmax; predicted uncertainty
``u = 1 - max p`` (or a user-supplied per-sample uncertainty, higher = less
certain); oracle uncertainty ``u* = 1 - p[y]``. For k = 0..steps-1,
``f_k = k / steps`` and ``t_k = quantile(u, 1 - f_k)`` (numpy's default linear
interpolation, in float64); the samples with ``u <= t_k`` are kept (the most
uncertain are removed, as the paper's text says; Alg. 1 as printed keeps
``u >= t``) and ``error_k = 1 - accuracy(kept)``. Ties share a threshold, so
they are kept or removed together and the curves do not depend on sample order.

Complexity: one sort per curve, a cumulative sum of correctness, and a
``searchsorted`` of the ``steps`` thresholds: O(N log N + steps log N), instead
of ``steps`` full boolean masks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from prunecheck.metrics._validation import MetricInputError, accumulation_dtype, validate_probs, validate_vector
from prunecheck.metrics.classification import _correct, _confidence, _true_class_prob


class SparsificationCurves(NamedTuple):
    """Sparsification curves, numpy float64 arrays of length ``steps``.

    ``fractions[k] = k / steps`` is the fraction of samples removed (nominally;
    ties can keep more); ``pred_errors`` / ``oracle_errors`` the error of the kept
    samples when removing by predicted / oracle uncertainty.
    """

    fractions: np.ndarray
    pred_errors: np.ndarray
    oracle_errors: np.ndarray

    @property
    def sparsification_error(self) -> np.ndarray:
        """``pred_errors - oracle_errors`` (its area is the AUSE)."""
        return self.pred_errors - self.oracle_errors


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise MetricInputError(f"steps: expected an integer >= 2, found {steps!r}")
    return int(steps)


def _quantile_plan(n: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of numpy's linear quantile at q_k = 1 - k/steps.

    Mirrors ``numpy.quantile(method="linear")``: virtual index ``(n - 1) * q``,
    neighbours ``floor`` and ``floor + 1`` (both clamped to the last element at
    the top), weight ``gamma = virtual - floor``.
    """
    q = 1.0 - np.arange(steps, dtype=np.float64) / steps
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    gamma = virtual - previous
    top = virtual >= n - 1
    previous[top] = n - 1
    following[top] = n - 1
    gamma[top] = 0.0
    return previous.astype(np.int64), following.astype(np.int64), gamma


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """numpy's ``_lerp``, one rounding per operation (separate kernels, no FMA)."""
    diff = b - a
    low_side = a + diff * t
    high_side = b - diff * (1.0 - t)
    return torch.where(t >= 0.5, high_side, low_side)


def _errors_removing_most_uncertain(u: torch.Tensor, correct: torch.Tensor, steps: int) -> torch.Tensor:
    """float [..., steps]: error of the samples with u <= quantile(u, 1 - k/steps).

    Works along the last dimension, so a batch of resamples [R, N] is one call.
    """
    n = u.shape[-1]
    u_sorted, order = torch.sort(u, dim=-1)
    hits = torch.gather(correct, -1, order).to(torch.int64).cumsum(dim=-1)
    previous, following, gamma = _quantile_plan(n, steps)
    device = u.device
    lead = u.shape[:-1]

    def at(index: np.ndarray) -> torch.Tensor:
        where = torch.from_numpy(index).to(device).expand(*lead, steps)
        return torch.gather(u_sorted, -1, where)

    t = _lerp(at(previous), at(following), torch.from_numpy(gamma).to(device=device, dtype=u.dtype))
    kept = torch.searchsorted(u_sorted, t.contiguous(), right=True).clamp_min(1)  # count of u <= t_k, >= 1
    return 1.0 - torch.gather(hits, -1, kept - 1).to(u.dtype) / kept.to(u.dtype)


def _curves(p: torch.Tensor, y: torch.Tensor, u: torch.Tensor | None, steps: int) -> SparsificationCurves:
    dtype = accumulation_dtype(p.device)
    correct = _correct(p, y)
    u_pred = (1.0 - _confidence(p)) if u is None else u.to(dtype)
    u_oracle = 1.0 - _true_class_prob(p, y)
    pred = _errors_removing_most_uncertain(u_pred, correct, steps)
    oracle = _errors_removing_most_uncertain(u_oracle, correct, steps)
    fractions = np.arange(steps, dtype=np.float64) / steps
    return SparsificationCurves(fractions, pred.cpu().numpy().astype(np.float64), oracle.cpu().numpy().astype(np.float64))


def _ause(p: torch.Tensor, y: torch.Tensor, u: torch.Tensor | None, steps: int) -> float:
    curves = _curves(p, y, u, steps)
    return float(np.trapezoid(curves.sparsification_error, curves.fractions))


def _validate(probs: Any, labels: Any, uncertainty: Any, steps: Any):
    steps = _check_steps(steps)
    p, y = validate_probs(probs, labels)
    u = None
    if uncertainty is not None:
        u = validate_vector(uncertainty, name="uncertainty", n_samples=p.shape[0], device=p.device)
    return p, y, u, steps


def sparsification_curves(
    probs: Any, labels: Any, uncertainty: Any = None, steps: int = 50
) -> SparsificationCurves:
    """Predicted and oracle sparsification curves (seed 000, Alg. 1, SPEC 3 reading).

    Args:
        probs: float [N, C].
        labels: int [N].
        uncertainty: optional float [N], higher = less certain (e.g. MC-dropout
            entropy); default ``1 - max p``.
        steps: number of points; fractions ``k / steps`` for k = 0..steps-1.

    Returns:
        ``SparsificationCurves(fractions, pred_errors, oracle_errors)``, numpy
        float64 arrays [steps].

    Example:
        >>> c = sparsification_curves([[0.9, 0.1], [0.6, 0.4]], [0, 1], steps=2)
        >>> c.pred_errors.tolist(), c.oracle_errors.tolist()  # 2nd point keeps u <= 0.25
        ([0.5, 0.0], [0.5, 0.0])
    """
    return _curves(*_validate(probs, labels, uncertainty, steps))


def ause(probs: Any, labels: Any, uncertainty: Any = None, steps: int = 50) -> float:
    """Area under the sparsification error (seed 000).

    Trapezoidal area of ``pred_errors - oracle_errors`` over
    f in [0, (steps - 1) / steps]; see :func:`sparsification_curves`.

    Args:
        probs: float [N, C].
        labels: int [N].
        uncertainty: optional float [N] predicted uncertainty (higher = less certain).
        steps: number of curve points (default 50, as Alg. 1's 2% percentile steps).

    Returns:
        AUSE; lower is better, 0 when the uncertainty ranks like the oracle.
        It can be slightly negative (``1 - p[y]`` is not an optimal ranking).

    Example:
        >>> # u = (0.1, 0.2) ranks the error last; oracle u* = (0.1, 0.6) too: AUSE 0
        >>> ause([[0.9, 0.1], [0.8, 0.2]], [0, 1], steps=2)
        0.0
    """
    return _ause(*_validate(probs, labels, uncertainty, steps))
