"""What the functional-similarity gates need, measured on a pair's models (seed 002, Sec. 4).

- :func:`measure_noise_similarity`: on a seeded, class-stratified sample of
  ``max_images`` test images (:func:`sample_rows`; seed 002: "a random subset of
  1000 test images"), for one noise level eps and R seeded repetitions, the
  inputs are ``x + U(-eps, eps)`` in normalised input space, without clipping
  (the ``noise(eps, r)`` views: the same noise for every model). Parent, pruned
  model and reference are predicted in one engine call per view, and the views
  are reduced to :class:`~prunecheck.gates.similarity.SimilarityPoint` one at a
  time (:func:`prunecheck.gates.similarity.similarity_points`). With eps = 0 every
  repetition is the same input, so one nominal pass stands for all of them.
  Memoised per workspace: the agreement and closer-than-reference tests of a
  pair and eps share one measurement.
- :func:`measure_informative_features`: BackSelect (:mod:`prunecheck.nn.backselect`)
  on ``backselect_images`` stratified test images for parent, pruned model and
  reference, each toward its own predicted class, and every model evaluated on
  every model's informative pixels.

Both take the workspace and the pair's spec; ``Pair.noise_similarity`` and
``Pair.informative_features`` (:mod:`prunecheck.session.pairs`) turn a failure into
``Unavailable``. The gates that turn these into results are :mod:`prunecheck.gates.similarity`.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from prunecheck.config.settings import PairSpec
from prunecheck.core.views import NOMINAL, View, noise
from prunecheck.data.base import ImageDataset, Subset
from prunecheck.data.views import apply_view
from prunecheck.gates.similarity import InformativeFeatures, NoiseSimilarity, SimilarityPoint, similarity_points

if TYPE_CHECKING:
    import torch

    from prunecheck.engine.predictor import PredictionEngine, Predictions
    from prunecheck.nn.models import LoadedModel
    from prunecheck.session.workspace import Workspace

__all__ = [
    "sample_rows",
    "noise_views",
    "noise_similarity",
    "measure_noise_similarity",
    "normalised_images",
    "measure_informative_features",
    "forget",
]

# workspace -> {(dataset, parent, compared models, eps, max_images, repetitions, seed): NoiseSimilarity}
_MEMO: "weakref.WeakKeyDictionary[Any, dict[tuple, NoiseSimilarity]]" = weakref.WeakKeyDictionary()


def forget() -> None:
    """Drop every memoised measurement (e.g. before predictions are resampled)."""
    _MEMO.clear()


# --------------------------------------------------------------------------- noise similarity


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
    engine: PredictionEngine,
    parent: LoadedModel,
    others: Sequence[LoadedModel],
    dataset: ImageDataset,
    eps: float,
    *,
    repetitions: int,
) -> list[SimilarityPoint]:
    """Agreement and softmax distance of each model in ``others`` to ``parent`` under noise.

    All models are predicted in one engine call per view, so they see the same
    noisy inputs (and each batch is loaded once); one view's predictions are held
    at a time.

    Args:
        engine: Predicts (and caches) the views.
        parent: The reference point of the comparison.
        others: Models to compare with it (pruned, reference, ...).
        dataset: Images to use (e.g. :func:`sample_rows` of the test set).
        eps: L-inf noise bound in normalised space (>= 0).
        repetitions: Seeded noise draws R (>= 1; 1 is used for eps = 0).

    Returns:
        One :class:`~prunecheck.gates.similarity.SimilarityPoint` per model of ``others``, in order.

    Raises:
        ValueError: Bad eps/repetitions, or predictions that are not valid
            probabilities (NaN).
    """
    views = noise_views(eps, repetitions)

    def predictions() -> Iterator[list[Predictions]]:
        for view in views:
            yield engine.predict_many([parent, *others], apply_view(dataset, view, seed=engine.seed))

    return similarity_points(predictions(), [model.name for model in others], eps)


def measure_noise_similarity(
    workspace: Workspace, spec: PairSpec, eps: float, options: Mapping[str, Any]
) -> NoiseSimilarity:
    """The pair's pruned model (and reference) compared with its parent at ``eps`` (memoised).

    Args:
        workspace: Predicts (and holds the memo).
        spec: The pair.
        eps: The noise level.
        options: ``[gates.functional]`` (``max_images``, ``repetitions``).

    Raises:
        PrunecheckError: A model or the dataset does not load.
        ValueError: Bad eps / repetitions / max_images, or NaN predictions.
    """
    seed = workspace.settings.run.seed
    names = (spec.pruned, *((spec.reference,) if spec.reference else ()))
    key = (spec.dataset, spec.parent, names, float(eps), options["max_images"], options["repetitions"], seed)
    memo = _MEMO.setdefault(workspace, {})
    if key not in memo:
        data = sample_rows(workspace.dataset(spec.dataset), options["max_images"], seed=seed)
        points = noise_similarity(
            workspace.engine, workspace.model(spec.parent), [workspace.model(name) for name in names], data, eps,
            repetitions=options["repetitions"],
        )
        reference = points[1] if len(points) > 1 else None
        memo[key] = NoiseSimilarity(spec.parent, float(eps), len(data), points[0], reference)
    return memo[key]


# --------------------------------------------------------------------------- BackSelect


def normalised_images(dataset: ImageDataset, indices: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 [B, 3, H, W] images of ``indices``, normalised by the engine's own normaliser."""
    from prunecheck.data.base import normaliser

    return normaliser(dataset.mean, dataset.std, device)(dataset.images(np.asarray(indices, dtype=np.int64)))


def measure_informative_features(
    workspace: Workspace, spec: PairSpec, options: Mapping[str, Any], *, mask_value: float = 0.0
) -> InformativeFeatures:
    """BackSelect on ``backselect_images`` stratified test images for parent, pruned model and reference.

    Each model's informative pixels are found toward its own predicted class, then
    every model is evaluated on every model's informative pixels. Runs on the
    engine's device; the networks go back to the CPU afterwards.

    Args:
        workspace: Loads the models and data.
        spec: The pair.
        options: ``[gates.functional]`` (``backselect_images``, ``backselect_pixels_per_round``,
            ``backselect_keep_fraction``).
        mask_value: Value of a masked pixel (normalised space; 0 = the dataset mean).
    """
    import torch

    from prunecheck.nn.backselect import backselect_order, cross_confidence, informative_pixels, model_probs

    pixels_per_round, keep_fraction = options["backselect_pixels_per_round"], options["backselect_keep_fraction"]
    dataset = sample_rows(
        workspace.dataset(spec.dataset), options["backselect_images"], seed=workspace.settings.run.seed
    )
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
    return InformativeFeatures(roles, len(dataset), int(pixels_per_round), float(keep_fraction), keep, cross)
