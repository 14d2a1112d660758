"""Damage the average hides (Hooker et al. 2019): the per-class accuracy gate and PIEs.

- :func:`class_accuracy`: accuracy(parent) - accuracy(pruned) of every class
  with at least ``min_class_images`` images; the worst one is gated against
  ``[gates.class_accuracy] max_class_drop``. In the ``confident`` / ``lenient``
  modes every gated class gets a paired bootstrap interval over its own images
  and the class with the worst deciding bound is gated. Smaller classes are
  reported, not gated; when no class is large enough the gate fails closed.
- :func:`pie_report`: Pruning Identified Exemplars between the pair's unpruned
  population (the parent's members, plus the reference's members when the pair
  has a reference) and its pruned population (the pruned model's members): count,
  class distribution, thumbnails of the first ones; gated only when
  ``[gates.pies] max_pie_fraction`` is set.

Both are pure functions of predictions and return an
:class:`~prunecheck.gates.decide.Outcome` (results and report entries). They work on the
pair's cached nominal predictions (the accuracy margin's); the PIE populations, which add
the reference's nominal predictions when there is one, are gathered by
:func:`prunecheck.session.perclass.pie_populations`.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from prunecheck import metrics
from prunecheck.gates.decide import GateResult, Outcome, Unavailable, available, decide, fail_closed, fail_closed_outcome

if TYPE_CHECKING:
    from prunecheck.data.base import ImageDataset
    from prunecheck.engine.predictor import Predictions

CLASS_GATE = "class_accuracy"
PIE_GATE = "pies"


# --------------------------------------------------------------------------- per-class accuracy


def _deciding_key(mode: str, drops: np.ndarray, intervals: dict[int, metrics.BootstrapResult]):
    """The per-class value each mode compares with the threshold (the worst class maximises it)."""
    if mode == "confident":
        return lambda c: intervals[c].high
    if mode == "lenient":
        return lambda c: intervals[c].low
    return lambda c: drops[c]


def class_label(index: int, names: Sequence[str] | None) -> str:
    """``class 4 'cross'`` when the dataset names its classes, else ``class 4``."""
    return f"class {index} '{names[index]}'" if names is not None and index < len(names) else f"class {index}"


def class_accuracy(
    parent: Predictions,
    pruned: Predictions,
    options: Mapping[str, Any],
    *,
    subject: str,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Outcome:
    """Gate the worst per-class accuracy drop of a pair, with the report entry.

    Args:
        parent, pruned: Predictions of the two models on the same nominal view.
        options: ``[gates.class_accuracy]`` (max_class_drop, min_class_images, mode, report_classes).
        subject: the pair's name.
        n_resamples, seed: the run's bootstrap settings (used by confident / lenient).

    Returns:
        The gate and the ``class_accuracy`` entry, which lists every class (images,
        correct counts, both accuracies, drop, interval when computed, whether it was
        gated) and the worst class; the entry is recorded even when the gate fails closed.
    """
    threshold = options["max_class_drop"]
    mode = options.get("mode", "point")
    payload: dict[str, Any] = {
        "view": parent.view.id, "max_class_drop": threshold, "min_class_images": options["min_class_images"],
        "mode": mode, "report_classes": options["report_classes"], "classes": [],
    }

    def build() -> GateResult:
        min_images = options["min_class_images"]  # counts and ranges: checked by the options schema
        before = metrics.per_class_accuracy(parent.probs, parent.labels)
        after = metrics.per_class_accuracy(pruned.probs, parent.labels)
        drops = before.accuracy - after.accuracy
        gated = [c for c in range(len(drops)) if before.counts[c] >= min_images]
        intervals: dict[int, metrics.BootstrapResult] = {}
        if mode != "point" and gated:
            intervals = metrics.class_drop_intervals(
                parent.probs, pruned.probs, parent.labels, gated, n_resamples=n_resamples, seed=seed
            )
        payload["classes"] = [
            {
                "class": c, "images": int(before.counts[c]), "parent_correct": int(before.correct[c]),
                "pruned_correct": int(after.correct[c]), "parent_accuracy": float(before.accuracy[c]),
                "pruned_accuracy": float(after.accuracy[c]), "drop": float(drops[c]),
                "ci": list(intervals[c].ci) if c in intervals else None, "gated": c in gated,
                "name": parent.classes[c] if parent.classes is not None else None,
            }
            for c in range(len(drops)) if before.counts[c] > 0
        ]
        if not gated:
            raise ValueError(
                f"no class has at least min_class_images = {min_images} images "
                f"(the largest has {int(before.counts.max())}); lower [gates.{CLASS_GATE}] min_class_images "
                "or evaluate more images"
            )
        worst = max(gated, key=_deciding_key(mode, drops, intervals))  # first class on ties
        payload["worst_class"] = worst
        return decide(
            name=CLASS_GATE,
            metric=f"accuracy drop of {class_label(worst, parent.classes)} ({int(before.counts[worst])} images)",
            value=drops[worst], threshold=threshold, threshold_name="max_class_drop", mode=mode,
            ci=intervals[worst].ci if worst in intervals else None,
            parent=before.accuracy[worst], pruned=after.accuracy[worst], subject=subject, view=parent.view.id,
            details={"class": worst, "images": int(before.counts[worst]), "gated_classes": len(gated)},
        )

    result = fail_closed(
        build, name=CLASS_GATE, metric="worst per-class accuracy drop", threshold=threshold,
        threshold_name="max_class_drop", subject=subject, view=parent.view.id,
    )
    return Outcome((result,), ((CLASS_GATE, subject, payload),))


# --------------------------------------------------------------------------- PIEs


def png_thumbnail(image: np.ndarray, size: int) -> bytes:
    """PNG bytes of a uint8 [3, H, W] image scaled so its longer side is ``size`` pixels.

    Small images are enlarged with nearest-neighbour (their pixels stay visible);
    large ones are shrunk with an antialiasing filter.
    """
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(np.transpose(image, (1, 2, 0))), mode="RGB")
    scale = size / max(picture.size)
    shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    picture.resize(shape, resample).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class PiePopulations:
    """What the PIE report compares, as the session gathers it.

    Attributes:
        unpruned: Predictions of the unpruned population (the parent, plus the
            reference when the pair has one) on the nominal test data.
        pruned: Predictions of the pruned population (the pruned model).
        dataset: The test data, for thumbnails of the first PIEs.
    """

    unpruned: Sequence[Predictions]
    pruned: Sequence[Predictions]
    dataset: ImageDataset


def _stack(population: list[Predictions]):
    import torch

    return torch.cat([p.member_probs for p in population], dim=0)


def _describe(population: list[Predictions]) -> list[dict[str, Any]]:
    return [{"model": p.model, "members": p.num_members} for p in population]


def pie_report(
    populations: PiePopulations | Unavailable, options: Mapping[str, Any], *, subject: str
) -> Outcome:
    """PIEs of a pair: the report entry, and the gate when ``max_pie_fraction`` is set.

    Args:
        populations: The pair's :class:`PiePopulations` (``Pair.pie_populations``, from
            :func:`prunecheck.session.perclass.pie_populations`), or why they could not
            be gathered (the gate fails closed with the reason).
        options: ``[gates.pies]`` (max_pie_fraction, thumbnails, thumbnail_size).
        subject: The pair's name.

    Returns:
        No result when the fraction is not gated and could be computed. The ``pies``
        entry holds the populations, the count and fraction, the class distribution (by
        true label) and base64 PNG thumbnails of the first ``thumbnails`` PIEs with their
        labels and modal predictions. When the PIEs cannot be computed (bad option, NaN
        predictions, a model that does not load) the result fails closed and the entry
        holds only ``error``.
    """
    def build() -> Outcome:
        limit = options["max_pie_fraction"]  # a fraction in [0, 1] or None: checked by the options schema
        payload = _pie_payload(available(populations), options)
        records = ((PIE_GATE, subject, payload),)
        if limit is None:
            return Outcome((), records)
        return Outcome((decide(
            name=PIE_GATE, metric=f"PIE fraction ({payload['pies']} of {payload['images']} images)",
            value=payload["fraction"], threshold=limit, threshold_name="max_pie_fraction", subject=subject,
            details={"pies": payload["pies"]},
        ),), records)

    return fail_closed_outcome(
        build, name=PIE_GATE, metric="pruning identified exemplars", threshold=float("nan"),
        threshold_name="max_pie_fraction", subject=subject, error_record=PIE_GATE,
    )


def _pie_payload(populations: PiePopulations, options: Mapping[str, Any]) -> dict[str, Any]:
    shown_count, size = options["thumbnails"], options["thumbnail_size"]  # checked by the options schema
    unpruned, pruned = list(populations.unpruned), list(populations.pruned)
    labels = unpruned[0].labels
    before, after = _stack(unpruned), _stack(pruned)
    mask = metrics.pie_mask(before, after)
    modal_before, modal_after = metrics.modal_classes(before), metrics.modal_classes(after)
    num_classes = int(before.shape[2])
    histogram = metrics.class_histogram(labels, mask, num_classes)
    totals = np.bincount(labels.cpu().numpy(), minlength=num_classes)
    shown = np.flatnonzero(mask)[:shown_count]
    images = populations.dataset.images(shown).cpu().numpy() if len(shown) else np.empty((0, 3, 1, 1), np.uint8)
    label_list = labels.cpu().numpy()
    names = unpruned[0].classes
    return {
        "unpruned": _describe(unpruned), "pruned": _describe(pruned),
        "images": int(mask.shape[0]), "pies": int(mask.sum()), "fraction": float(mask.mean()),
        "classes": [
            {"class": int(c), "pies": int(histogram[c]), "images": int(totals[c]),
             "name": names[c] if names is not None else None}
            for c in np.argsort(-histogram, kind="stable") if histogram[c] > 0
        ],
        "first": [
            {
                "index": int(i), "label": int(label_list[i]),
                "unpruned_modal": np.flatnonzero(modal_before[i]).tolist(),
                "pruned_modal": np.flatnonzero(modal_after[i]).tolist(),
                "png": base64.b64encode(png_thumbnail(image, size)).decode("ascii"),
            }
            for i, image in zip(shown, images)
        ],
        "max_pie_fraction": options.get("max_pie_fraction"),
    }
