"""Paired bootstrap confidence interval of a metric difference (pruned - parent).

Both models are scored on the SAME resampled test indices, so the interval
reflects the uncertainty of the difference, not of each value on its own.
Indices come from ``numpy.random.default_rng(seed)`` on the host (identical on
every device) in chunks of at most ~4M indices; registered metrics use
vectorised kernels (``_resample``), any other callable a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from prunecheck.metrics._validation import MetricInputError, validate_probs
from prunecheck.metrics.registry import metric_info

#: Upper bound on indices drawn per chunk (rows x samples).
CHUNK_INDICES = 1 << 22


@dataclass(frozen=True)
class BootstrapResult:
    """Result of :func:`paired_bootstrap`.

    Attributes:
        estimate: the difference on the full test set (``metric(pruned) -
            metric(parent)``, or the degradation when ``as_degradation``).
        low, high: percentile interval, widened to contain ``estimate`` if needed.
        n_resamples: number of bootstrap resamples.
        confidence: nominal coverage, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    n_resamples: int
    confidence: float = 0.95

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)


def _index_chunks(n_samples: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_INDICES // n_samples)
    done = 0
    while done < n_resamples:
        take = min(rows, n_resamples - done)
        yield rng.integers(0, n_samples, size=(take, n_samples), dtype=np.int64)
        done += take


def bootstrap_indices(n_samples: int, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The resampled index sets :func:`paired_bootstrap` uses, int64 [n_resamples, n_samples].

    Meant for small inputs (tests, inspection): it materialises every row.
    """
    return np.concatenate(list(_index_chunks(n_samples, n_resamples, seed)), axis=0)


def resampled_counts(hits: Any, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Per resample, how many of the resampled rows each series has True (exact integers).

    Every series (a model on a view, ...) is resampled with the SAME indices,
    drawn like :func:`paired_bootstrap` draws them (``_index_chunks``), so
    statistics built from the counts (accuracies, prune potentials, excess
    errors of a whole family) are paired. Row ``r`` of the result equals
    ``hits[:, bootstrap_indices(N, n_resamples=R, seed=seed)[r]].sum(1)``.

    Args:
        hits: bool [S, N]: S series over the same N test rows.
        n_resamples: R.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        int64 [R, S].

    Example:
        >>> resampled_counts(np.array([[True, True], [False, True]]), n_resamples=2, seed=0).shape
        (2, 2)
    """
    _check_args(n_resamples, 0.95, seed)
    h = np.asarray(hits)
    if h.ndim != 2 or h.shape[1] < 1 or h.dtype != np.bool_:
        raise MetricInputError(
            f"hits: expected a bool array [series, rows] with rows >= 1, found {h.dtype} {list(h.shape)}"
        )
    return _resampled_sums(h.T.astype(np.int64), n_resamples, seed)


def resampled_means(values: Any, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Per resample, the mean of each series over the resampled rows (same indices for all series).

    Like :func:`resampled_counts` for float per-row values (e.g. each image's
    agreement averaged over noise repetitions): float64 [R, S] for values [S, N].
    """
    _check_args(n_resamples, 0.95, seed)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 1 or not np.all(np.isfinite(v)):
        raise MetricInputError(
            f"values: expected finite floats [series, rows] with rows >= 1, found shape {list(v.shape)}"
        )
    return _resampled_sums(v.T, n_resamples, seed) / v.shape[1]


def _resampled_sums(weights: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """[R, S]: per resample, sum over its rows of ``weights`` [N, S] (each row counted as often as drawn)."""
    n = weights.shape[0]
    out = []
    for chunk in _index_chunks(n, n_resamples, seed):
        offsets = np.arange(chunk.shape[0], dtype=np.int64)[:, None] * n
        multiplicity = np.bincount((chunk + offsets).ravel(), minlength=chunk.shape[0] * n).reshape(-1, n)
        out.append(multiplicity.astype(weights.dtype) @ weights)
    return np.concatenate(out, axis=0)


def kernel_differences(
    resample_parent: Callable[[torch.Tensor], torch.Tensor],
    resample_pruned: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    *,
    n_resamples: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``metric(pruned) - metric(parent)`` on each of the R paired resamples, float64 [R].

    ``resample_*(idx)`` maps int64 indices [r, N] to the metric of each of the r resampled
    test sets (a kernel of :mod:`prunecheck.metrics._resample`); the indices are the ones
    :func:`bootstrap_indices` lists, drawn in chunks on the host and moved to ``device``.
    """
    diffs = np.empty(n_resamples, dtype=np.float64)
    done = 0
    for chunk in _index_chunks(n_samples, n_resamples, seed):
        idx = torch.from_numpy(chunk).to(device)
        diffs[done : done + len(chunk)] = (resample_pruned(idx) - resample_parent(idx)).double().cpu().numpy()
        done += len(chunk)
    return diffs


def difference_interval(
    diffs: np.ndarray, estimate: float, *, confidence: float, as_degradation_sign: float = 1.0
) -> BootstrapResult:
    """The paired bootstrap's result from its resampled differences: the percentile interval of
    ``sign * diffs`` widened to contain ``sign * estimate`` (:func:`paired_bootstrap`).

    Raises:
        MetricInputError: a resample whose metric is not finite.
    """
    if not np.all(np.isfinite(diffs)):
        raise MetricInputError(f"metric: expected finite values on every resample, found {diffs[~np.isfinite(diffs)][0]!r}")
    sign = float(as_degradation_sign)
    estimate = sign * float(estimate)
    low, high = percentile_interval(sign * diffs, estimate, confidence)
    return BootstrapResult(
        estimate=estimate, low=low, high=high, n_resamples=int(len(diffs)), confidence=float(confidence)
    )


def percentile_interval(values: Any, estimate: float, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of resampled ``values``, widened to contain ``estimate`` (as :func:`paired_bootstrap`)."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise MetricInputError("bootstrap: expected finite values on every resample, found a non-finite one")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(v, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return min(float(low), float(estimate)), max(float(high), float(estimate))


def _check_args(n_resamples: Any, confidence: Any, seed: Any) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise MetricInputError(f"n_resamples: expected an integer >= 1, found {n_resamples!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise MetricInputError(f"confidence: expected a number in (0, 1), found {confidence!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MetricInputError(f"seed: expected an integer >= 0, found {seed!r}")


def _gather(x: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of x, keeping x's type (numpy stays numpy, torch stays on its device)."""
    if isinstance(x, torch.Tensor):
        return x[torch.from_numpy(idx).to(x.device)]
    return np.asarray(x)[idx]


def paired_bootstrap(
    metric: str | Callable[[Any, Any], float],
    parent_probs: Any,
    pruned_probs: Any,
    labels: Any = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    as_degradation: bool = False,
    higher_is_better: bool | None = None,
    metric_kwargs: Mapping[str, Any] | None = None,
) -> BootstrapResult:
    """Percentile bootstrap interval of ``metric(pruned) - metric(parent)`` on paired resamples.

    Each resample draws N test indices with replacement and scores BOTH models
    on them. The interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    percentiles (numpy linear) of the R resampled differences, widened to
    contain the full-data estimate if it falls outside (resampled ECE is biased
    upward, for instance). Deterministic for a given seed, on any device.

    Args:
        metric: a name in :data:`~prunecheck.metrics.METRICS` whose inputs are
            (probs, labels) or (probs,), or a callable ``(probs, labels) -> float``
            called with resampled inputs of the same type as given (slow path).
        parent_probs: float [N, C] probabilities of the parent.
        pruned_probs: float [N, C] probabilities of the pruned model, same rows.
        labels: int [N]; ``None`` only for label-free metrics (``predictive_entropy``).
        n_resamples: number of resamples R.
        confidence: nominal coverage of the interval.
        seed: seed of ``numpy.random.default_rng``.
        as_degradation: report the degradation (sign flipped when higher is
            better) instead of pruned - parent, so positive = pruned is worse.
        higher_is_better: direction of a callable metric (needed with ``as_degradation``).
        metric_kwargs: extra keyword arguments of the metric (e.g. ``{"n_bins": 10}``).

    Returns:
        ``BootstrapResult(estimate, low, high, n_resamples, confidence)``.

    Example:
        >>> parent = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]
        >>> r = paired_bootstrap("accuracy", parent, parent, [0, 1, 1], n_resamples=50)
        >>> (r.estimate, r.low, r.high)
        (0.0, 0.0, 0.0)
    """
    _check_args(n_resamples, confidence, seed)
    kwargs = dict(metric_kwargs or {})
    if "uncertainty" in kwargs:
        raise MetricInputError(
            "metric_kwargs: a per-sample 'uncertainty' differs between parent and pruned model and "
            "cannot be shared; found 'uncertainty' (pass a callable metric instead)"
        )
    if isinstance(metric, str):
        info = metric_info(metric)
        if info.inputs not in ("probs_labels", "probs"):
            raise MetricInputError(
                f"metric: expected a metric of (probs, labels) or (probs,), found {metric!r} with inputs {info.inputs!r}"
            )
        fn, direction, prepare = info.fn, info.higher_is_better, info.bootstrap
        if info.inputs == "probs_labels" and labels is None:
            raise MetricInputError(f"labels: metric {metric!r} needs labels, found None")
        label_free = info.inputs == "probs"
    elif callable(metric):
        fn, direction, prepare, label_free = metric, higher_is_better, None, labels is None
    else:
        raise MetricInputError(f"metric: expected a metric name or a callable, found {type(metric).__name__}")
    if as_degradation and direction is None:
        raise MetricInputError("higher_is_better: expected True or False with as_degradation=True and a callable metric")

    parent, y = validate_probs(parent_probs, None if label_free else labels, name="parent_probs")
    pruned, _ = validate_probs(pruned_probs, name="pruned_probs")
    if pruned.shape != parent.shape:
        raise MetricInputError(
            f"pruned_probs: expected the shape of parent_probs {tuple(parent.shape)}, found {tuple(pruned.shape)}"
        )
    pruned = pruned.to(parent.device)
    n = parent.shape[0]
    sign = -1.0 if (as_degradation and direction) else 1.0

    if isinstance(metric, str):
        estimate = fn(pruned, y, **kwargs) if not label_free else fn(pruned, **kwargs)
        estimate -= fn(parent, y, **kwargs) if not label_free else fn(parent, **kwargs)
    else:
        estimate = float(fn(pruned_probs, labels, **kwargs)) - float(fn(parent_probs, labels, **kwargs))

    if prepare is not None:
        diffs = kernel_differences(
            prepare(parent, y, **kwargs), prepare(pruned, y, **kwargs), n,
            n_resamples=n_resamples, seed=seed, device=parent.device,
        )
    else:
        diffs = np.empty(n_resamples, dtype=np.float64)
        done = 0
        for chunk in _index_chunks(n, n_resamples, seed):
            for row in chunk:
                y_row = None if labels is None else _gather(labels, row)
                diffs[done] = float(fn(_gather(pruned_probs, row), y_row, **kwargs)) - float(
                    fn(_gather(parent_probs, row), y_row, **kwargs)
                )
                done += 1
    return difference_interval(diffs, estimate, confidence=confidence, as_degradation_sign=sign)


__all__ = ["BootstrapResult", "bootstrap_indices", "paired_bootstrap", "percentile_interval", "resampled_counts", "resampled_means"]
