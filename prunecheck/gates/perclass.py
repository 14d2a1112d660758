"""Damage the average hides (Hooker et al. 2019): the per-class accuracy gate and PIEs.

- :func:`class_accuracy_gate`: accuracy(parent) - accuracy(pruned) of every class
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

Both work on the pair's cached nominal predictions (the accuracy margin's); the
PIE populations add the reference's nominal predictions when there is one.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from prunecheck import metrics
from prunecheck.gates.decide import GateResult, decide, failed_closed

if TYPE_CHECKING:
    from prunecheck.engine.predictor import Predictions
    from prunecheck.session.workspace import Pair

CLASS_GATE = "class_accuracy"
PIE_GATE = "pies"


# --------------------------------------------------------------------------- per-class accuracy


def _count_option(options: dict[str, Any], key: str, suite: str, minimum: int) -> int:
    """An integer option with a lower bound (the config checks only its type)."""
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"gates.{suite}.{key}: expected an integer >= {minimum}, found {value!r}")
    return value


def _deciding_key(mode: str, drops: np.ndarray, intervals: dict[int, metrics.BootstrapResult]):
    """The per-class value each mode compares with the threshold (the worst class maximises it)."""
    if mode == "confident":
        return lambda c: intervals[c].high
    if mode == "lenient":
        return lambda c: intervals[c].low
    return lambda c: drops[c]


def class_accuracy_gate(
    parent: Predictions,
    pruned: Predictions,
    options: dict[str, Any],
    *,
    subject: str,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[GateResult, dict[str, Any]]:
    """Gate the worst per-class accuracy drop of a pair; also return the report payload.

    Args:
        parent, pruned: Predictions of the two models on the same nominal view.
        options: ``[gates.class_accuracy]`` (max_class_drop, min_class_images, mode, report_classes).
        subject: the pair's name.
        n_resamples, seed: the run's bootstrap settings (used by confident / lenient).

    Returns:
        ``(result, payload)``; the payload lists every class (images, correct counts,
        both accuracies, drop, interval when computed, whether it was gated).
    """
    threshold = options["max_class_drop"]
    mode = options.get("mode", "point")
    payload: dict[str, Any] = {
        "view": parent.view.id, "max_class_drop": threshold, "min_class_images": options["min_class_images"],
        "mode": mode, "report_classes": options["report_classes"], "classes": [],
    }
    try:
        min_images = _count_option(options, "min_class_images", CLASS_GATE, 1)
        _count_option(options, "report_classes", CLASS_GATE, 0)
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
            }
            for c in range(len(drops)) if before.counts[c] > 0
        ]
        if not gated:
            raise ValueError(
                f"no class has at least min_class_images = {min_images} images "
                f"(the largest has {int(before.counts.max())}); lower [gates.{CLASS_GATE}] min_class_images "
                "or evaluate more images"
            )
    except (ValueError, RuntimeError) as exc:
        result = failed_closed(
            name=CLASS_GATE, metric="worst per-class accuracy drop", threshold=threshold,
            threshold_name="max_class_drop", subject=subject, view=parent.view.id,
            reason=f"cannot be computed ({exc}); the gate fails closed",
        )
        return result, payload
    worst = max(gated, key=_deciding_key(mode, drops, intervals))  # first class on ties
    result = decide(
        name=CLASS_GATE, metric=f"accuracy drop of class {worst} ({int(before.counts[worst])} images)",
        value=drops[worst], threshold=threshold, threshold_name="max_class_drop", mode=mode,
        ci=intervals[worst].ci if worst in intervals else None,
        parent=before.accuracy[worst], pruned=after.accuracy[worst], subject=subject, view=parent.view.id,
        details={"class": worst, "images": int(before.counts[worst]), "gated_classes": len(gated)},
    )
    payload["worst_class"] = worst
    return result, payload


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


def pie_populations(pair: Pair) -> tuple[list[Predictions], list[Predictions]]:
    """(unpruned, pruned) predictions of the pair's populations on its nominal test data.

    Unpruned: the parent, plus the reference when the pair has one; pruned: the
    pruned model. Ensembles vote with each member, so an ensemble of pruned seeds
    is a population of its own.
    """
    parent, pruned = pair.predictions()
    unpruned = [parent]
    if pair.spec.reference:
        unpruned.append(pair.workspace.predict(pair.spec.reference, pair.spec.dataset))
    return unpruned, [pruned]


def _stack(population: list[Predictions]):
    import torch

    return torch.cat([p.member_probs for p in population], dim=0)


def _describe(population: list[Predictions]) -> list[dict[str, Any]]:
    return [{"model": p.model, "members": p.num_members} for p in population]


def pie_report(pair: Pair, options: dict[str, Any]) -> tuple[list[GateResult], dict[str, Any]]:
    """PIEs of a pair: the report payload, and the gate when ``max_pie_fraction`` is set.

    Returns:
        ``(results, payload)``: ``results`` is empty when the fraction is not gated and
        could be computed. The payload holds the populations, the count and fraction,
        the class distribution (by true label) and base64 PNG thumbnails of the first
        ``thumbnails`` PIEs with their labels and modal predictions. When the PIEs
        cannot be computed (bad option, NaN predictions) the result fails closed and
        the payload holds only ``error``.
    """
    try:
        limit = options["max_pie_fraction"]  # a fraction in [0, 1] or None: checked by the options schema
        payload = _pie_payload(pair, options)
    except (ValueError, RuntimeError) as exc:
        reason = f"cannot be computed ({exc}); the gate fails closed"
        return [failed_closed(name=PIE_GATE, metric="pruning identified exemplars", reason=reason,
                              threshold=float("nan"), threshold_name="max_pie_fraction", subject=pair.name)], {
            "error": str(exc)}
    if limit is None:
        return [], payload
    return [decide(
        name=PIE_GATE, metric=f"PIE fraction ({payload['pies']} of {payload['images']} images)",
        value=payload["fraction"], threshold=limit, threshold_name="max_pie_fraction", subject=pair.name,
        details={"pies": payload["pies"]},
    )], payload


def _pie_payload(pair: Pair, options: dict[str, Any]) -> dict[str, Any]:
    shown_count = _count_option(options, "thumbnails", PIE_GATE, 0)
    size = _count_option(options, "thumbnail_size", PIE_GATE, 8)
    unpruned, pruned = pie_populations(pair)
    labels = unpruned[0].labels
    before, after = _stack(unpruned), _stack(pruned)
    mask = metrics.pie_mask(before, after)
    modal_before, modal_after = metrics.modal_classes(before), metrics.modal_classes(after)
    num_classes = int(before.shape[2])
    histogram = metrics.class_histogram(labels, mask, num_classes)
    totals = np.bincount(labels.cpu().numpy(), minlength=num_classes)
    shown = np.flatnonzero(mask)[:shown_count]
    dataset = pair.workspace.dataset(pair.spec.dataset)
    images = dataset.images(shown).cpu().numpy() if len(shown) else np.empty((0, 3, 1, 1), np.uint8)
    label_list = labels.cpu().numpy()
    return {
        "unpruned": _describe(unpruned), "pruned": _describe(pruned),
        "images": int(mask.shape[0]), "pies": int(mask.sum()), "fraction": float(mask.mean()),
        "classes": [
            {"class": int(c), "pies": int(histogram[c]), "images": int(totals[c])}
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
