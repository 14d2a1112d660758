"""Classification metrics on predicted probabilities: accuracy, NLL, Brier, ECE, ...

Every public function validates its input (see ``_validation``), computes on
the input's device and returns a Python ``float`` (curves and bins return small
NamedTuples of numpy arrays). Per-sample reductions are accumulated in float64.
The ``_``-prefixed kernels take already-validated tensors; the bootstrap
reuses them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from prunecheck.metrics._validation import (
    MetricInputError,
    accumulation_dtype,
    validate_member_probs,
    validate_pair,
    validate_probs,
    validate_vector,
)

#: ``nll`` clamps p[y] at this value before the log.
NLL_CLAMP = 1e-12


# ---------------------------------------------------------------- per-sample kernels
def _correct(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """bool [N]: argmax (first maximal class on ties) equals the label."""
    return p.argmax(dim=1) == y


def _confidence(p: torch.Tensor) -> torch.Tensor:
    """float64 [N]: max probability."""
    return p.amax(dim=1).to(accumulation_dtype(p.device))


def _true_class_prob(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """float64 [N]: p[y]."""
    return p.gather(1, y[:, None])[:, 0].to(accumulation_dtype(p.device))


def _per_sample_accuracy(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _correct(p, y).to(accumulation_dtype(p.device))


def _per_sample_nll(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -torch.log(_true_class_prob(p, y).clamp_min(NLL_CLAMP))


def _per_sample_brier(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    diff = p.to(accumulation_dtype(p.device))
    onehot = torch.zeros_like(diff).scatter_(1, y[:, None], 1.0)
    return ((diff - onehot) ** 2).sum(dim=1)


def _per_sample_entropy(p: torch.Tensor) -> torch.Tensor:
    q = p.to(accumulation_dtype(p.device))
    return -torch.special.xlogy(q, q).sum(dim=-1)


# ---------------------------------------------------------------- simple means
def accuracy(probs: Any, labels: Any) -> float:
    """Fraction of samples whose argmax equals the label.

    Args:
        probs: float [N, C] class probabilities (rows sum to 1).
        labels: int [N] in [0, C).

    Returns:
        Accuracy in [0, 1]. On ties the first maximal class is the prediction.

    Example:
        >>> accuracy([[0.9, 0.1], [0.2, 0.8]], [0, 0])
        0.5
    """
    p, y = validate_probs(probs, labels)
    return float(_per_sample_accuracy(p, y).mean())


def nll(probs: Any, labels: Any) -> float:
    """Mean negative log-likelihood, ``mean(-log(max(p[y], 1e-12)))``, natural log.

    Args:
        probs: float [N, C].
        labels: int [N].

    Returns:
        NLL in nats, in [0, -log(1e-12)] ≈ [0, 27.63].

    Example:
        >>> round(nll([[0.5, 0.5], [1.0, 0.0]], [0, 0]), 6)  # (log 2 + 0) / 2
        0.346574
    """
    p, y = validate_probs(probs, labels)
    return float(_per_sample_nll(p, y).mean())


def brier(probs: Any, labels: Any) -> float:
    """Brier score: mean over samples of ``sum_c (p_c - onehot_c)^2``.

    Args:
        probs: float [N, C].
        labels: int [N].

    Returns:
        Brier score in [0, 2].

    Example:
        >>> round(brier([[0.75, 0.25]], [1]), 6)  # 0.75^2 + 0.75^2
        1.125
    """
    p, y = validate_probs(probs, labels)
    return float(_per_sample_brier(p, y).mean())


def predictive_entropy(probs: Any) -> float:
    """Mean entropy of the predictive distribution, ``mean(-sum_c p_c log p_c)``, nats.

    ``0 log 0`` counts as 0.

    Args:
        probs: float [N, C].

    Returns:
        Mean entropy in [0, log C].

    Example:
        >>> round(predictive_entropy([[0.5, 0.5], [1.0, 0.0]]), 6)  # (log 2 + 0) / 2
        0.346574
    """
    p, _ = validate_probs(probs)
    return float(_per_sample_entropy(p).mean())


def disagreement(member_probs: Any) -> float:
    """Ensemble disagreement: mean over members and samples of KL(member || mean).

    ``KL(p_m || pbar) = sum_c p_m,c log(p_m,c / pbar_c)`` with ``pbar`` the
    average of the M members (seed 001). Equals the mutual information between
    prediction and member (entropy of the mean minus mean entropy).

    Args:
        member_probs: float [M, N, C].

    Returns:
        Disagreement in nats, >= 0; 0 when all members agree exactly.

    Example:
        >>> round(disagreement([[[1.0, 0.0]], [[0.0, 1.0]]]), 6)  # 2 * log(1 / 0.5) / 2
        0.693147
    """
    p = validate_member_probs(member_probs)
    q = p.to(accumulation_dtype(p.device))
    mean = q.mean(dim=0, keepdim=True)
    # p_m = 0 contributes 0; p_m > 0 implies mean > 0, so the log is finite.
    kl = (torch.special.xlogy(q, q) - torch.special.xlogy(q, mean.expand_as(q))).sum(dim=-1)
    return float(kl.clamp_min(0.0).mean())


def agreement(probs_a: Any, probs_b: Any) -> float:
    """Fraction of samples on which two models predict the same class (argmax).

    Args:
        probs_a: float [N, C].
        probs_b: float [N, C].

    Returns:
        Agreement in [0, 1]; symmetric; 1.0 for identical inputs.

    Example:
        >>> agreement([[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.7, 0.3]])
        0.5
    """
    a, b = validate_pair(probs_a, probs_b)
    equal = a.argmax(dim=1) == b.argmax(dim=1)
    return float(equal.to(accumulation_dtype(a.device)).mean())


def softmax_distance(probs_a: Any, probs_b: Any) -> float:
    """Mean L2 norm of the difference of two models' probabilities (seed 002, Sec. 4.1).

    Args:
        probs_a: float [N, C].
        probs_b: float [N, C].

    Returns:
        Mean distance in [0, sqrt(2)].

    Example:
        >>> round(softmax_distance([[1.0, 0.0]], [[0.0, 1.0]]), 6)  # sqrt(1 + 1)
        1.414214
    """
    a, b = validate_pair(probs_a, probs_b)
    dtype = accumulation_dtype(a.device)
    return float(torch.linalg.vector_norm(a.to(dtype) - b.to(dtype), dim=1).mean())


# ---------------------------------------------------------------- calibration
class CalibrationBins(NamedTuple):
    """Per-bin statistics behind the ECE (numpy float64 arrays of length n_bins).

    ``accuracy`` and ``confidence`` are NaN for empty bins.
    """

    edges: np.ndarray  # [n_bins + 1], b / n_bins
    counts: np.ndarray  # [n_bins]
    accuracy: np.ndarray  # [n_bins]
    confidence: np.ndarray  # [n_bins]


def _bin_index(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    """int64 [N]: bin b with b/n <= conf < (b+1)/n; conf >= 1 lands in the last bin."""
    edges = torch.arange(1, n_bins, device=conf.device, dtype=conf.dtype) / n_bins
    return torch.bucketize(conf, edges, right=True)


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise MetricInputError(f"n_bins: expected an integer >= 1, found {n_bins!r}")
    return int(n_bins)


def _bin_sums(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    conf = _confidence(p)
    correct = _correct(p, y).to(conf.dtype)
    index = _bin_index(conf, n_bins)
    counts = torch.bincount(index, minlength=n_bins).to(conf.dtype)
    conf_sum = torch.zeros(n_bins, dtype=conf.dtype, device=conf.device).index_add_(0, index, conf)
    correct_sum = torch.zeros(n_bins, dtype=conf.dtype, device=conf.device).index_add_(0, index, correct)
    return counts, conf_sum, correct_sum


def _ece(p: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    conf = _confidence(p)
    gap = _correct(p, y).to(conf.dtype) - conf
    # sum_b |B_b|/N * |acc_b - conf_b| = sum_b |sum_{i in B_b} (correct_i - conf_i)| / N
    per_bin = torch.zeros(n_bins, dtype=conf.dtype, device=conf.device).index_add_(0, _bin_index(conf, n_bins), gap)
    return float(per_bin.abs().sum() / p.shape[0])


def calibration_bins(probs: Any, labels: Any, n_bins: int = 15) -> CalibrationBins:
    """Equal-width confidence bins, as used by :func:`ece` (reliability diagrams).

    Args:
        probs: float [N, C].
        labels: int [N].
        n_bins: number of equal-width bins on [0, 1].

    Returns:
        ``CalibrationBins(edges, counts, accuracy, confidence)``; see :func:`ece`
        for the bin rule.
    """
    n_bins = _check_n_bins(n_bins)
    p, y = validate_probs(probs, labels)
    counts, conf_sum, correct_sum = (t.cpu().numpy() for t in _bin_sums(p, y, n_bins))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(counts > 0, correct_sum / counts, np.nan)
        conf = np.where(counts > 0, conf_sum / counts, np.nan)
    return CalibrationBins(np.arange(n_bins + 1) / n_bins, counts, acc, conf)


def ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins (L1).

    confidence = max_c p_c; bin b holds ``b/n <= conf < (b+1)/n`` (bin edges
    computed as ``b / n`` in float64), and the last bin also holds conf = 1.0.
    ``ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)|``.

    Matches torchmetrics ``MulticlassCalibrationError(norm="l1")`` except that
    torchmetrics puts conf = 1.0 in a hidden extra bin of its own.

    Args:
        probs: float [N, C].
        labels: int [N].
        n_bins: number of bins (default 15).

    Returns:
        ECE in [0, 1].

    Example:
        >>> # conf 0.9 (correct) and 0.9 (wrong) share bin 13: |0.5 - 0.9| = 0.4
        >>> round(ece([[0.9, 0.1], [0.9, 0.1]], [0, 1]), 6)
        0.4
    """
    n_bins = _check_n_bins(n_bins)
    p, y = validate_probs(probs, labels)
    return _ece(p, y, n_bins)


# ---------------------------------------------------------------- confidence curve
class ConfidenceCurve(NamedTuple):
    """Coverage and selective accuracy per confidence threshold (numpy float64 arrays [T]).

    ``accuracy`` is NaN where no sample reaches the threshold (coverage 0).
    """

    thresholds: np.ndarray
    coverage: np.ndarray  # fraction of samples with max p >= tau
    accuracy: np.ndarray  # accuracy among them


def confidence_curve(probs: Any, labels: Any, thresholds: Any) -> ConfidenceCurve:
    """Accuracy versus confidence threshold (seed 001).

    For each threshold tau: coverage = fraction of samples with max p >= tau,
    accuracy = accuracy among those samples. One sort, O(N log N + T log N).

    Args:
        probs: float [N, C].
        labels: int [N].
        thresholds: float [T], any order, finite.

    Returns:
        ``ConfidenceCurve(thresholds, coverage, accuracy)``, numpy arrays [T] in
        the order of ``thresholds``.

    Example:
        >>> c = confidence_curve([[0.9, 0.1], [0.6, 0.4]], [0, 1], [0.5, 0.8, 0.95])
        >>> c.coverage.tolist(), c.accuracy.tolist()[:2]
        ([1.0, 0.5, 0.0], [0.5, 1.0])
    """
    p, y = validate_probs(probs, labels)
    tau = validate_vector(thresholds, name="thresholds", device=p.device)
    dtype = accumulation_dtype(p.device)
    tau = tau.to(dtype)
    conf, order = torch.sort(_confidence(p))
    correct = _correct(p, y)[order].to(torch.int64)
    n = p.shape[0]
    # correct counts among sorted positions >= i: suffix sums, with a 0 appended for i = N
    suffix = torch.cat([correct.flip(0).cumsum(0).flip(0), correct.new_zeros(1)])
    first = torch.searchsorted(conf, tau.contiguous(), right=False)  # first index with conf >= tau
    kept = (n - first).to(dtype)
    hits = suffix[first].to(dtype)
    coverage = (kept / n).cpu().numpy()
    kept_np, hits_np = kept.cpu().numpy(), hits.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(kept_np > 0, hits_np / kept_np, np.nan)
    return ConfidenceCurve(tau.cpu().numpy(), coverage, acc)
