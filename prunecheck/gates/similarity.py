"""Functional similarity of a pruned model to its parent (seed 002, Sec. 4): the gates.

Pure functions of what the session measured (:mod:`prunecheck.session.similarity`
predicts; nothing here calls a model):

- :func:`similarity_points`: from the predictions of the parent and the compared
  models under each noise view of one level eps (the same noisy inputs for all),
  the agreement of the argmax with the parent's and the mean L2 distance of the
  softmax outputs per view (:func:`prunecheck.metrics.agreement`,
  :func:`prunecheck.metrics.softmax_distance`), and each image's agreement
  averaged over the views (what the gate modes bootstrap).
- :func:`agreement`: gate ``functional`` / ``min_agreement`` on the pruned model's
  mean agreement at one eps, plus the report's "Functional similarity" entry.
- :func:`closer_than_reference`: gate ``functional`` / ``min_reference_margin`` on
  the pruned model's agreement minus the separately trained reference's, at one eps.
- :func:`informative_features`: the BackSelect comparison (:mod:`prunecheck.nn.backselect`)
  as a report entry: pixel overlap with the parent and cross-confidences; not gated.

The gates take the measurement, or :class:`~prunecheck.gates.decide.Unavailable` when the
session could not measure it (``Pair.noise_similarity``), and unwrap it with
:func:`~prunecheck.gates.decide.available` inside their fail-closed build: a similarity that
cannot be measured (data that does not load, NaN outputs) is a failed gate with the reason,
like a gate whose metric cannot be computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from prunecheck import metrics
from prunecheck.core.errors import GateError
from prunecheck.gates.decide import (
    COMPUTE_ERRORS, GateResult, Outcome, Unavailable, available, decide, fail_closed, fail_closed_outcome,
)

if TYPE_CHECKING:
    import torch

    from prunecheck.engine.predictor import Predictions

__all__ = [
    "SUITE",
    "SimilarityPoint",
    "NoiseSimilarity",
    "InformativeFeatures",
    "similarity_points",
    "agreement_interval",
    "similarity_result",
    "agreement",
    "closer_than_reference",
    "informative_features",
]

#: The options table (``[gates.functional]``), the gate's name and the report section.
SUITE = "functional"


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class SimilarityPoint:
    """Similarity of one model to the parent at one noise level.

    Attributes:
        model: The compared model's name.
        eps: Noise level (L-inf bound, normalised input space).
        agreement: Agreement with the parent per repetition, each in [0, 1].
        distance: Mean softmax L2 distance to the parent per repetition.
        per_image: float64 [N]: each image's agreement averaged over the
            repetitions (what the gate modes bootstrap); not in :meth:`to_dict`.
    """

    model: str
    eps: float
    agreement: tuple[float, ...]
    distance: tuple[float, ...]
    per_image: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def mean_agreement(self) -> float:
        return float(np.mean(self.agreement))

    @property
    def mean_distance(self) -> float:
        return float(np.mean(self.distance))

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "eps": self.eps,
            "agreement": list(self.agreement),
            "distance": list(self.distance),
            "mean_agreement": self.mean_agreement,
            "mean_distance": self.mean_distance,
            "std_agreement": float(np.std(self.agreement)),
            "std_distance": float(np.std(self.distance)),
        }


@dataclass(frozen=True)
class NoiseSimilarity:
    """A pair's pruned model (and reference) compared with its parent at one noise level.

    Attributes:
        parent: The parent's model name.
        eps: Noise level.
        images: How many test images were compared (the class-stratified sample).
        pruned: The pruned model's point.
        reference: The reference's point; ``None`` when the pair has no reference.
    """

    parent: str
    eps: float
    images: int
    pruned: SimilarityPoint
    reference: SimilarityPoint | None = None


@dataclass(frozen=True)
class InformativeFeatures:
    """BackSelect's result on a pair's models (``roles``: parent, pruned and maybe reference).

    Attributes:
        roles: ``{"parent": name, "pruned": name, ["reference": name]}``.
        images: How many images (a class-stratified sample).
        pixels_per_round: Pixels BackSelect removed per round.
        keep_fraction: Share of pixels kept as informative.
        keep: bool [B, H*W] informative pixels of each role.
        cross_confidence: ``[source][evaluator]``: the evaluator's mean true-class
            probability with only the source's informative pixels visible.
    """

    roles: Mapping[str, str]
    images: int
    pixels_per_round: int
    keep_fraction: float
    keep: Mapping[str, "torch.Tensor"]
    cross_confidence: Mapping[str, Mapping[str, float]]


def similarity_points(
    views: Iterable[Sequence[Predictions]], models: Sequence[str], eps: float
) -> list[SimilarityPoint]:
    """Agreement and softmax distance of each compared model to the parent, view by view.

    Args:
        views: Per noise view (repetition), the predictions ``[parent, *compared]``
            on the same images and the same noisy inputs; consumed once, so a
            generator that predicts one view at a time keeps one view in memory.
        models: The compared models' names, in the order of the predictions.
        eps: The noise level the views belong to.

    Returns:
        One :class:`SimilarityPoint` per compared model, in order.

    Raises:
        ValueError: No view, a view with another number of models, or predictions
            that are not valid probabilities (NaN).

    Example:
        Two views in which the compared model agrees on 2 of 4 and on 4 of 4 images
        give ``agreement == (0.5, 1.0)`` and ``per_image == [1, 1, 0.5, 0.5]``.
    """
    agreements: list[list[float]] = [[] for _ in models]
    distances: list[list[float]] = [[] for _ in models]
    same: list[np.ndarray] = []
    count = 0
    for predictions in views:
        if len(predictions) != len(models) + 1:
            raise ValueError(
                f"similarity: expected predictions of the parent and {len(models)} compared model(s) per view, "
                f"found {len(predictions)}"
            )
        parent, *others = predictions
        if not same:
            same = [np.zeros(int(parent.labels.shape[0])) for _ in models]
        for i, preds in enumerate(others):
            agreements[i].append(metrics.agreement(preds.probs, parent.probs))
            distances[i].append(metrics.softmax_distance(preds.probs, parent.probs))
            same[i] += (preds.probs.argmax(dim=1) == parent.probs.argmax(dim=1)).cpu().numpy()
        count += 1
    if count == 0:
        raise ValueError("similarity: expected predictions of at least one noise view, found none")
    return [
        SimilarityPoint(name, float(eps), tuple(agreements[i]), tuple(distances[i]), same[i] / count)
        for i, name in enumerate(models)
    ]


# --------------------------------------------------------------------------- gates


def agreement_interval(*points: SimilarityPoint, n_resamples: int, seed: int) -> tuple[float, float]:
    """95% bootstrap interval over test images of ``points[0]``'s mean agreement, or with two
    points of ``points[0] - points[1]`` (pruned minus reference), the same images for both.

    Raises:
        ValueError: a point carries no per-image agreement.
    """
    from prunecheck.metrics.bootstrap import percentile_interval, resampled_means

    if any(p.per_image is None for p in points):
        raise ValueError("the bootstrap modes need per-image agreement (SimilarityPoint.per_image)")
    means = resampled_means(np.stack([p.per_image for p in points]), n_resamples=n_resamples, seed=seed)
    draws = means[:, 0] - (means[:, 1] if len(points) > 1 else 0.0)
    estimate = points[0].mean_agreement - (points[1].mean_agreement if len(points) > 1 else 0.0)
    return percentile_interval(draws, estimate)


def similarity_result(
    *points: SimilarityPoint, mode: str, threshold: float, threshold_name: str, metric: str,
    n_resamples: int, seed: int, subject: str, view: str, details: dict, pruned: float | None = None,
) -> GateResult:
    """The ``min`` gate on a mean agreement (one point) or an agreement margin (pruned, reference).

    ``confident`` passes only if the lower end of the 95% interval over test images
    reaches the threshold, ``lenient`` fails only if its upper end does not.
    """
    value = points[0].mean_agreement - (points[1].mean_agreement if len(points) > 1 else 0.0)
    ci = agreement_interval(*points, n_resamples=n_resamples, seed=seed) if mode != "point" else None
    return decide(
        name=SUITE, metric=metric, value=value, threshold=threshold, threshold_name=threshold_name,
        direction="min", mode=mode, ci=ci, pruned=pruned, subject=subject, view=view,
        details={**details, **({"n_resamples": n_resamples} if ci else {})},
    )


def agreement(
    similarity: NoiseSimilarity | Unavailable, options: Mapping[str, Any], *,
    subject: str, eps: float, seed: int, n_resamples: int,
) -> Outcome:
    """Gate ``min_agreement`` on the pruned model's mean agreement with the parent at ``eps``.

    Args:
        similarity: The pair's :class:`NoiseSimilarity` at ``eps`` (``Pair.noise_similarity``),
            or why it could not be measured (the gate fails closed with the reason).
        options: ``[gates.functional]`` (``mode``, ``min_agreement``).
        subject: The pair's name.
        eps: The noise level (the gate's view is ``noise<eps>``).
        seed, n_resamples: The run's bootstrap settings (``confident`` / ``lenient``).

    Returns:
        The gate and, when the similarity was measured, the report entry
        (``kind = "noise"``: eps, repetitions, images, parent, pruned and reference points).
    """
    threshold_name = "min_agreement"
    view = f"noise{eps:g}"
    failure = dict(name=SUITE, metric="agreement with parent", threshold=options[threshold_name],
                   threshold_name=threshold_name, direction="min", subject=subject, view=view)

    def build() -> Outcome:
        measured = available(similarity)
        pruned, reference = measured.pruned, measured.reference
        record = {
            "kind": "noise",
            "eps": float(eps),
            "repetitions": len(pruned.agreement),
            "images": measured.images,
            "parent": measured.parent,
            "pruned": pruned.to_dict(),
            "reference": reference.to_dict() if reference else None,
            "min_agreement": options[threshold_name],
        }
        result = fail_closed(lambda: similarity_result(
            pruned, mode=options["mode"], threshold=float(options[threshold_name]), threshold_name=threshold_name,
            metric="agreement with parent", n_resamples=n_resamples, seed=seed, subject=subject, view=view,
            details={"mean_distance": pruned.mean_distance, "repetitions": len(pruned.agreement),
                     "images": measured.images}), **failure)
        return Outcome((result,), ((SUITE, subject, record),))

    return fail_closed_outcome(build, **failure)


def closer_than_reference(
    similarity: NoiseSimilarity | Unavailable, options: Mapping[str, Any], *,
    subject: str, eps: float, seed: int, n_resamples: int,
) -> Outcome:
    """Gate ``min_reference_margin`` on agreement(pruned) - agreement(reference) with the parent at ``eps``.

    Per eps, so a failure points at the noise level where the pruned model drifted.
    Arguments as :func:`agreement`; the similarity must carry a reference point
    (else the gate fails closed). Adds no report entry (:func:`agreement` adds it).
    """
    threshold_name = "min_reference_margin"
    threshold = float(options[threshold_name])
    view = f"noise{eps:g}"
    common = dict(name=SUITE, threshold=threshold, threshold_name=threshold_name, direction="min",
                  subject=subject, view=view)

    def build() -> Outcome:
        measured = available(similarity)
        pruned, reference = measured.pruned, measured.reference
        if reference is None:
            raise ValueError(f"the pair has no reference model to compare '{pruned.model}' with")
        metric = (
            f"agreement with parent of pruned '{pruned.model}' minus "
            f"reference '{reference.model}' ({reference.mean_agreement:.4f})"
        )
        return Outcome((fail_closed(lambda: similarity_result(
            pruned, reference, mode=options["mode"], threshold=threshold, threshold_name=threshold_name,
            metric=metric, n_resamples=n_resamples, seed=seed, subject=subject, view=view,
            pruned=pruned.mean_agreement, details={
                "reference_agreement": reference.mean_agreement, "pruned_distance": pruned.mean_distance,
                "reference_distance": reference.mean_distance}), metric=metric, **common),))

    return fail_closed_outcome(build, metric="agreement with parent, pruned minus reference", **common)


def informative_features(features: InformativeFeatures | Unavailable, *, subject: str) -> Outcome:
    """The BackSelect report entry of a pair (reported, not gated).

    Args:
        features: The pair's :class:`InformativeFeatures` (``Pair.informative_features``),
            or why they could not be measured.
        subject: The pair's name.

    Raises:
        GateError: the features could not be measured (a one-line failure; there is no gate to fail).

    Returns:
        An outcome without gates whose entry has ``kind = "backselect"``, the models,
        each model's overlap with the parent's informative pixels (mean and per image)
        and ``cross_confidence[source][evaluator]``.
    """
    from prunecheck.nn.backselect import pixel_overlap

    try:
        features = available(features)
    except COMPUTE_ERRORS as exc:
        raise GateError(f"informative features of pair {subject!r} cannot be computed: {exc}") from None
    overlap = {
        role: pixel_overlap(features.keep[role], features.keep["parent"])
        for role in features.roles if role != "parent"
    }
    return Outcome(records=((SUITE, subject, {
        "kind": "backselect",
        "images": int(features.images),
        "pixels_per_round": int(features.pixels_per_round),
        "keep_fraction": float(features.keep_fraction),
        "models": dict(features.roles),
        "overlap_with_parent": {role: float(v.mean()) for role, v in overlap.items()},
        "overlap_per_image": {role: v.cpu().tolist() for role, v in overlap.items()},
        "cross_confidence": {source: dict(row) for source, row in features.cross_confidence.items()},
    }),))
