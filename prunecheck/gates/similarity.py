"""Functional similarity of a pruned model to its parent (seed 002, Sec. 4).

Two measures:

- **Noise similarity** (:func:`noise_similarity`): on a seeded, class-stratified
  sample of ``max_images`` test images (:func:`sample_rows`; seed 002: "a random
  subset of 1000 test images"), for each noise level eps and R seeded repetitions, the inputs are
  ``x + U(-eps, eps)`` in normalised input space, without clipping (the engine's
  ``noise(eps, r)`` view: the same noise for every model), and we measure the
  agreement of the argmax with the parent's and the mean L2 distance of the
  softmax outputs (:func:`prunecheck.metrics.agreement`,
  :func:`prunecheck.metrics.softmax_distance`). With eps = 0 every repetition
  is the same input, so one nominal pass stands for all of them.
- **Informative features** (:func:`backselect_order`): the greedy backward
  selection (BackSelect) of Carter et al., as seed 002 uses it: pixels are
  masked (all channels set to ``mask_value``, 0 = the dataset mean in
  normalised space) in the order that lowers the confidence of the model's own
  predicted class the least; the pixels masked last are the most informative.
  Instead of one pixel per round, ``pixels_per_round`` pixels are removed per
  round (those whose single removal lowers the confidence least), and all
  images are processed as one batch. :func:`informative_pixels` keeps the
  top ``keep_fraction`` (seed 002: 10%, a sparsity of 90%), :func:`pixel_overlap`
  compares two models' sets and :func:`cross_confidence` evaluates each model
  on each model's informative pixels (seed 002, Fig. 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from prunecheck import metrics
from prunecheck.core.errors import ModelError
from prunecheck.core.views import NOMINAL, View, noise
from prunecheck.data.base import ImageDataset, Subset
from prunecheck.data.views import apply_view
from prunecheck.nn.models import LoadedModel

__all__ = [
    "SimilarityPoint",
    "sample_rows",
    "noise_views",
    "noise_similarity",
    "model_probs",
    "normalised_images",
    "backselect_order",
    "informative_pixels",
    "pixel_overlap",
    "cross_confidence",
    "informative_features",
]

Forward = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- noise similarity


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


def sample_rows(dataset: ImageDataset, max_images: int, *, seed: int = 0) -> ImageDataset:
    """A seeded, class-stratified sample of ``max_images`` rows (the dataset itself when it is no larger).

    Not the first rows: sorted datasets (ImageFolder, ImageNet val) hold their
    classes in blocks. The rows depend only on the labels and ``seed``
    (:func:`prunecheck.data.base.stratified_indices`), so every model and every
    run with that seed use the same images.

    Raises:
        ValueError: ``max_images`` < 1.
    """
    from prunecheck.data.base import stratified_indices

    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1:
        raise ValueError(f"max_images: expected an integer >= 1, found {max_images!r}")
    if len(dataset) <= max_images:
        return dataset
    return Subset(dataset, stratified_indices(dataset.labels, int(max_images), seed=seed))


def noise_views(eps: float, repetitions: int) -> list[View]:
    """The views behind one noise level: R seeded ``noise(eps, r)``, or NOMINAL once for eps = 0.

    Raises:
        ValueError: eps < 0 or not finite, or repetitions < 1.
    """
    if isinstance(repetitions, bool) or not isinstance(repetitions, (int, np.integer)) or repetitions < 1:
        raise ValueError(f"repetitions: expected an integer >= 1, found {repetitions!r}")
    if not math.isfinite(float(eps)) or eps < 0:
        raise ValueError(f"eps: expected a finite number >= 0, found {eps!r}")
    if eps == 0:
        return [NOMINAL]
    return [noise(float(eps), r) for r in range(int(repetitions))]


def noise_similarity(
    engine,
    parent: LoadedModel,
    others: Sequence[LoadedModel],
    dataset: ImageDataset,
    eps: float,
    *,
    repetitions: int,
) -> list[SimilarityPoint]:
    """Agreement and softmax distance of each model in ``others`` to ``parent`` under noise.

    All models are predicted in one engine call per view, so they see the same
    noisy inputs (and each batch is loaded once).

    Args:
        engine: A :class:`prunecheck.engine.predictor.PredictionEngine`.
        parent: The reference point of the comparison.
        others: Models to compare with it (pruned, reference, ...).
        dataset: Images to use (e.g. :func:`sample_rows` of the test set).
        eps: L-inf noise bound in normalised space (>= 0).
        repetitions: Seeded noise draws R (>= 1; 1 is used for eps = 0).

    Returns:
        One :class:`SimilarityPoint` per model of ``others``, in order.

    Raises:
        ValueError: Bad eps/repetitions, or predictions that are not valid
            probabilities (NaN).
    """
    views = noise_views(eps, repetitions)
    agreements: list[list[float]] = [[] for _ in others]
    distances: list[list[float]] = [[] for _ in others]
    same = [np.zeros(len(dataset)) for _ in others]
    for view in views:
        parent_preds, *other_preds = engine.predict_many([parent, *others], apply_view(dataset, view, seed=engine.seed))
        for i, preds in enumerate(other_preds):
            agreements[i].append(metrics.agreement(preds.probs, parent_preds.probs))
            distances[i].append(metrics.softmax_distance(preds.probs, parent_preds.probs))
            same[i] += (preds.probs.argmax(dim=1) == parent_preds.probs.argmax(dim=1)).cpu().numpy()
    return [
        SimilarityPoint(model.name, float(eps), tuple(agreements[i]), tuple(distances[i]), same[i] / len(views))
        for i, model in enumerate(others)
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
):
    """The ``min`` gate on a mean agreement (one point) or an agreement margin (pruned, reference).

    ``confident`` passes only if the lower end of the 95% interval over test images
    reaches the threshold, ``lenient`` fails only if its upper end does not.
    """
    from prunecheck.gates.decide import decide

    value = points[0].mean_agreement - (points[1].mean_agreement if len(points) > 1 else 0.0)
    ci = agreement_interval(*points, n_resamples=n_resamples, seed=seed) if mode != "point" else None
    return decide(
        name="functional", metric=metric, value=value, threshold=threshold, threshold_name=threshold_name,
        direction="min", mode=mode, ci=ci, pruned=pruned, subject=subject, view=view,
        details={**details, **({"n_resamples": n_resamples} if ci else {})},
    )


# --------------------------------------------------------------------------- BackSelect


def model_probs(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities [B, C] of a loaded model (ensembles combined as the engine does).

    The model's networks must already be on ``x``'s device and in eval mode.
    """
    networks = model.networks()
    if not networks:
        raise ModelError(f"model '{model.name}': has neither a module nor ensemble members")
    logits = [net(x).float() for net in networks]
    if len(logits) == 1:
        return torch.softmax(logits[0], dim=-1)
    if model.spec.ensemble_average == "logits":
        return torch.softmax(torch.stack([torch.log_softmax(z, -1) for z in logits]).mean(0), dim=-1)
    return torch.stack([torch.softmax(z, -1) for z in logits]).mean(0)


def normalised_images(dataset: ImageDataset, indices: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 [B, 3, H, W] images of ``indices``, normalised as the engine does it."""
    images = dataset.images(np.asarray(indices, dtype=np.int64)).to(device).float().div_(255.0)
    mean = torch.tensor(dataset.mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(dataset.std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


@torch.no_grad()
def backselect_order(
    forward: Forward,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    pixels_per_round: int,
    mask_value: float = 0.0,
    batch_size: int = 512,
) -> torch.Tensor:
    """Removal rank of every pixel by batched backward selection (BackSelect).

    Each round, for every image and every pixel still present, the image with
    that pixel also masked is scored by the probability of ``target``; the
    ``pixels_per_round`` pixels whose masking keeps it highest are masked
    (in that order). Rounds repeat until every pixel is masked.

    Args:
        forward: Maps float [M, C, H, W] inputs to probabilities [M, K].
        x: float [B, C, H, W] (normalised) images.
        target: int64 [B] class whose confidence is kept (usually the
            model's own prediction on ``x``).
        pixels_per_round: Pixels removed per round (>= 1; 1 is the exact
            greedy procedure).
        mask_value: Value of a masked pixel in every channel.
        batch_size: Masked variants per forward call.

    Returns:
        int64 [B, H*W]: 0 for the pixel masked first (least informative),
        H*W - 1 for the one masked last (most informative).

    Raises:
        ValueError: Bad shapes or a non-positive ``pixels_per_round``.
    """
    if x.ndim != 4:
        raise ValueError(f"backselect: expected images [B, C, H, W], found shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    if tuple(target.shape) != (b,):
        raise ValueError(f"backselect: expected one target per image ({b}), found shape {tuple(target.shape)}")
    if isinstance(pixels_per_round, bool) or not isinstance(pixels_per_round, (int, np.integer)) or pixels_per_round < 1:
        raise ValueError(f"backselect: pixels_per_round must be an integer >= 1, found {pixels_per_round!r}")
    p = h * w
    device = x.device
    target = target.to(device)
    flat = x.reshape(b, c, p)
    removed = torch.zeros((b, p), dtype=torch.bool, device=device)
    rank = torch.full((b, p), -1, dtype=torch.int64, device=device)
    done = 0
    while done < p:
        remaining = (~removed).nonzero()[:, 1].view(b, p - done)  # [B, r], same r for every image
        r = remaining.shape[1]
        current = torch.where(removed[:, None, :], torch.full_like(flat, mask_value), flat)  # [B, C, P]
        image_of = torch.arange(b, device=device).repeat_interleave(r)  # [B*r]
        pixel_of = remaining.reshape(-1)  # [B*r]
        scores = torch.empty(b * r, device=device)
        for start in range(0, b * r, batch_size):
            stop = min(start + batch_size, b * r)
            variants = current[image_of[start:stop]].clone()  # [m, C, P]
            variants[torch.arange(stop - start, device=device), :, pixel_of[start:stop]] = mask_value
            probs = forward(variants.view(stop - start, c, h, w))
            scores[start:stop] = probs[torch.arange(stop - start, device=device), target[image_of[start:stop]]]
        k = min(int(pixels_per_round), r)
        chosen = scores.view(b, r).topk(k, dim=1).indices  # highest kept confidence first
        pixels = remaining.gather(1, chosen)  # [B, k]
        order = torch.arange(done, done + k, device=device).expand(b, k)
        rank.scatter_(1, pixels, order)
        removed.scatter_(1, pixels, True)
        done += k
    return rank


def informative_pixels(rank: torch.Tensor, keep_fraction: float = 0.1) -> torch.Tensor:
    """bool [B, P]: the ``ceil(keep_fraction * P)`` pixels masked last (most informative).

    Raises:
        ValueError: ``keep_fraction`` not in (0, 1].
    """
    if not 0.0 < float(keep_fraction) <= 1.0:
        raise ValueError(f"keep_fraction: expected a fraction in (0, 1], found {keep_fraction!r}")
    p = rank.shape[-1]
    keep = max(1, math.ceil(float(keep_fraction) * p))
    return rank >= p - keep


def pixel_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image |a ∩ b| / |a| of two informative-pixel sets of equal size: float [B] in [0, 1].

    Raises:
        ValueError: Shapes differ or a set is empty.
    """
    if a.shape != b.shape:
        raise ValueError(f"pixel_overlap: expected equal shapes, found {tuple(a.shape)} and {tuple(b.shape)}")
    size = a.sum(dim=-1)
    if bool((size == 0).any()):
        raise ValueError("pixel_overlap: expected non-empty pixel sets, found an empty one")
    return (a & b).sum(dim=-1).float() / size.float()


@torch.no_grad()
def cross_confidence(
    forward: Forward, x: torch.Tensor, keep: torch.Tensor, labels: torch.Tensor, *, mask_value: float = 0.0
) -> float:
    """Mean probability of the true class when only the ``keep`` pixels are shown (seed 002, Fig. 3).

    Args:
        forward: Maps float [B, C, H, W] to probabilities [B, K].
        x: float [B, C, H, W] images.
        keep: bool [B, H*W] pixels left visible (another model's informative pixels).
        labels: int64 [B] true classes.
    """
    b, c, h, w = x.shape
    shown = torch.where(keep.view(b, 1, h, w).to(x.device), x, torch.full_like(x, mask_value))
    probs = forward(shown)
    return float(probs[torch.arange(b, device=probs.device), labels.to(probs.device)].mean())


def informative_features(
    workspace,
    spec,
    *,
    images: int,
    pixels_per_round: int,
    keep_fraction: float = 0.1,
    mask_value: float = 0.0,
) -> dict:
    """BackSelect on ``images`` stratified test images (:func:`sample_rows`) for parent, pruned and reference.

    Each model's informative pixels are found toward its own predicted class.
    Runs on the engine's device; the networks go back to the CPU afterwards.

    Args:
        workspace: A :class:`prunecheck.session.workspace.Workspace`.
        spec: The pair's :class:`~prunecheck.config.settings.PairSpec`.
        images: How many images (a class-stratified sample, seeded by ``[run] seed``).
        pixels_per_round: Pixels removed per BackSelect round.
        keep_fraction: Share of pixels kept as informative (seed 002: 0.1).
        mask_value: Value of a masked pixel (normalised space).

    Returns:
        A report payload: ``kind = "backselect"``, the models, per-model overlap
        with the parent's informative pixels (mean and per image), and
        ``cross_confidence[source][evaluator]``: the evaluator's mean true-class
        probability on the source model's informative pixels.
    """
    dataset = sample_rows(workspace.dataset(spec.dataset), images, seed=workspace.settings.run.seed)
    roles = {"parent": spec.parent, "pruned": spec.pruned}
    if spec.reference:
        roles["reference"] = spec.reference
    models = {role: workspace.model(name) for role, name in roles.items()}
    device = workspace.engine.device
    x = normalised_images(dataset, np.arange(len(dataset)), device)
    labels = dataset.labels.to(device)
    networks = {id(n): n for m in models.values() for n in m.networks()}
    keep: dict[str, torch.Tensor] = {}
    try:
        for net in networks.values():
            net.to(device).eval()
        forwards = {role: (lambda inputs, m=model: model_probs(m, inputs)) for role, model in models.items()}
        with torch.no_grad():
            for role, forward in forwards.items():
                target = forward(x).argmax(dim=1)
                rank = backselect_order(forward, x, target, pixels_per_round=pixels_per_round, mask_value=mask_value)
                keep[role] = informative_pixels(rank, keep_fraction)
            cross = {
                source: {
                    evaluator: cross_confidence(forward, x, keep[source], labels, mask_value=mask_value)
                    for evaluator, forward in forwards.items()
                }
                for source in models
            }
    finally:
        for net in networks.values():
            net.to("cpu")
    overlap = {role: pixel_overlap(keep[role], keep["parent"]) for role in models if role != "parent"}
    return {
        "kind": "backselect",
        "images": len(dataset),
        "pixels_per_round": int(pixels_per_round),
        "keep_fraction": float(keep_fraction),
        "models": roles,
        "overlap_with_parent": {role: float(v.mean()) for role, v in overlap.items()},
        "overlap_per_image": {role: v.cpu().tolist() for role, v in overlap.items()},
        "cross_confidence": cross,
    }
