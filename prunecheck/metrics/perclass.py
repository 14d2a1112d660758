"""Per-class and per-image metrics behind the averages (Hooker et al. 2019, arXiv 1911.05248).

A pruned model can keep its top-1 accuracy while losing a few classes or a small
set of images almost entirely. These functions expose that damage:

- :func:`per_class_accuracy`: correct and total counts and accuracy of every class.
- :func:`class_accuracy_drop`: accuracy(parent) - accuracy(pruned) per class.
- :func:`prediction_votes` / :func:`modal_classes`: how a population of models votes.
- :func:`pie_mask`: Pruning Identified Exemplars, the images whose modal prediction
  differs between the pruned and the unpruned population.

Predictions are argmax with the first maximal class on ties, as
:func:`prunecheck.metrics.accuracy`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch

from prunecheck.metrics._validation import MetricInputError, validate_labels, validate_member_probs, validate_probs
from prunecheck.metrics.bootstrap import BootstrapResult, paired_bootstrap


class PerClassAccuracy(NamedTuple):
    """Result of :func:`per_class_accuracy`, numpy arrays of length C.

    Attributes:
        correct: int64, images of the class predicted as that class.
        counts: int64, images labelled with the class.
        accuracy: float64, ``correct / counts``; NaN for a class without images.
    """

    correct: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray


def _class_counts(hit: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    counts = torch.bincount(y, minlength=num_classes)
    correct = torch.bincount(y, weights=hit.to(torch.float64), minlength=num_classes)
    return correct.round().to(torch.int64).cpu().numpy(), counts.cpu().numpy().astype(np.int64)


def per_class_accuracy(probs: Any, labels: Any) -> PerClassAccuracy:
    """Accuracy of every class: among the images labelled c, the fraction predicted c.

    Args:
        probs: float [N, C] class probabilities (rows sum to 1).
        labels: int [N] in [0, C).

    Returns:
        :class:`PerClassAccuracy` of arrays [C]; a class without images has
        count 0 and accuracy NaN (it has no accuracy, not a bad one).

    Example:
        >>> r = per_class_accuracy([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]], [0, 1, 1])
        >>> r.correct.tolist(), r.counts.tolist(), r.accuracy.tolist()
        ([1, 1], [1, 2], [1.0, 0.5])
    """
    p, y = validate_probs(probs, labels)
    correct, counts = _class_counts(p.argmax(dim=1) == y, y, p.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return PerClassAccuracy(correct, counts, acc.astype(np.float64))


def class_accuracy_drop(parent_probs: Any, pruned_probs: Any, labels: Any) -> np.ndarray:
    """accuracy(parent) - accuracy(pruned) of every class, float64 [C] (positive = pruned worse).

    Both models are scored on the same images; NaN for a class without images.

    Example:
        >>> parent = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]
        >>> pruned = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
        >>> class_accuracy_drop(parent, pruned, [0, 1, 1]).tolist()
        [0.0, 0.5]
    """
    parent = per_class_accuracy(parent_probs, labels)
    pruned = per_class_accuracy(pruned_probs, labels)
    if parent.counts.shape != pruned.counts.shape:
        raise MetricInputError(
            f"pruned_probs: expected {parent.counts.shape[0]} classes like parent_probs, found {pruned.counts.shape[0]}"
        )
    return parent.accuracy - pruned.accuracy


def class_drop_intervals(
    parent_probs: Any,
    pruned_probs: Any,
    labels: Any,
    classes: Any,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[int, BootstrapResult]:
    """Paired bootstrap interval of each class's accuracy drop, resampling that class's images.

    For class c, :func:`~prunecheck.metrics.paired_bootstrap` of ``accuracy`` runs
    on the rows labelled c only (both models on the same resampled rows), as a
    degradation: positive = the pruned model is worse on c.

    Args:
        parent_probs, pruned_probs: float [N, C] on the same images.
        labels: int [N].
        classes: the class indices to compute (each must have at least one image).
        n_resamples, confidence, seed: as :func:`~prunecheck.metrics.paired_bootstrap`.

    Returns:
        ``{class: BootstrapResult}``; ``estimate`` equals :func:`class_accuracy_drop`.

    Example:
        >>> parent = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]
        >>> r = class_drop_intervals(parent, parent, [0, 1, 1], [1], n_resamples=20)
        >>> (r[1].estimate, r[1].low, r[1].high)
        (0.0, 0.0, 0.0)
    """
    parent, y = validate_probs(parent_probs, labels, name="parent_probs")
    pruned, _ = validate_probs(pruned_probs, name="pruned_probs")
    if pruned.shape != parent.shape:
        raise MetricInputError(
            f"pruned_probs: expected the shape of parent_probs {tuple(parent.shape)}, found {tuple(pruned.shape)}"
        )
    pruned = pruned.to(parent.device)
    out: dict[int, BootstrapResult] = {}
    for c in classes:
        rows = torch.nonzero(y == int(c)).flatten()
        if rows.numel() == 0:
            raise MetricInputError(f"classes: expected classes with at least one image, found class {int(c)} with none")
        r = paired_bootstrap(
            "accuracy", parent[rows], pruned[rows], y[rows], n_resamples=n_resamples,
            confidence=confidence, seed=seed, as_degradation=True,
        )
        # + 0.0 turns the sign flip's -0.0 into 0.0 (reports would print "-0.0000")
        out[int(c)] = replace(r, estimate=r.estimate + 0.0, low=r.low + 0.0, high=r.high + 0.0)
    return out


def prediction_votes(member_probs: Any) -> np.ndarray:
    """How many models of a population predict each class for each image, int64 [N, C].

    Args:
        member_probs: float [M, N, C], the class probabilities of the M models
            of a population on the same N images.

    Example:
        >>> prediction_votes([[[0.9, 0.1]], [[0.4, 0.6]], [[0.7, 0.3]]]).tolist()
        [[2, 1]]
    """
    p = validate_member_probs(member_probs)
    m, n, c = p.shape
    predicted = p.argmax(dim=2)  # [M, N]
    flat = (torch.arange(n, device=p.device)[None, :] * c + predicted).reshape(-1)
    return torch.bincount(flat, minlength=n * c).view(n, c).cpu().numpy().astype(np.int64)


def modal_classes(member_probs: Any) -> np.ndarray:
    """bool [N, C]: the classes with the most votes for each image (several when votes tie).

    Example:
        >>> modal_classes([[[0.9, 0.1, 0.0]], [[0.2, 0.8, 0.0]]]).tolist()
        [[True, True, False]]
    """
    votes = prediction_votes(member_probs)
    return votes == votes.max(axis=1, keepdims=True)


def pie_mask(unpruned_member_probs: Any, pruned_member_probs: Any) -> np.ndarray:
    """Pruning Identified Exemplars (Hooker et al. 2019, Sec. 2): bool [N].

    An image is a PIE when the modal prediction of the pruned population differs
    from the modal prediction of the unpruned population. Tie rule: when votes
    tie, a population's modal prediction is the set of tied classes, and the
    image is a PIE only when the two sets share no class, i.e. when no way of
    breaking the ties could make the populations agree. This count is
    independent of the class order (a first-index tie break is not) and equals
    the paper's definition whenever neither population ties.

    Args:
        unpruned_member_probs: float [M0, N, C] of the unpruned models (parent,
            reference, ensemble members).
        pruned_member_probs: float [M1, N, C] of the pruned models, same images.

    Example:
        >>> unpruned = [[[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]]
        >>> pruned = [[[0.9, 0.1, 0.0], [0.1, 0.0, 0.9]]]
        >>> pie_mask(unpruned, pruned).tolist()
        [False, True]
    """
    unpruned = modal_classes(unpruned_member_probs)
    pruned = modal_classes(pruned_member_probs)
    if unpruned.shape != pruned.shape:
        raise MetricInputError(
            f"pruned_member_probs: expected [M, {unpruned.shape[0]}, {unpruned.shape[1]}] like "
            f"unpruned_member_probs, found [M, {pruned.shape[0]}, {pruned.shape[1]}]"
        )
    return ~np.any(unpruned & pruned, axis=1)


def class_histogram(labels: Any, mask: Any, num_classes: int) -> np.ndarray:
    """int64 [C]: how many of the images selected by ``mask`` carry each label.

    Example:
        >>> class_histogram([0, 1, 1, 2], [True, True, False, True], 3).tolist()
        [1, 1, 1]
    """
    selected = torch.as_tensor(np.asarray(mask, dtype=bool))
    if selected.ndim != 1:
        raise MetricInputError(f"mask: expected a 1-D boolean array [N], found shape {tuple(selected.shape)}")
    y = validate_labels(labels, n_samples=selected.shape[0], n_classes=num_classes).cpu()
    return torch.bincount(y[selected], minlength=num_classes).numpy().astype(np.int64)


__all__ = [
    "PerClassAccuracy",
    "class_accuracy_drop",
    "class_drop_intervals",
    "class_histogram",
    "modal_classes",
    "per_class_accuracy",
    "pie_mask",
    "prediction_votes",
]
