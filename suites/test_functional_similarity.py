"""Functional similarity of each pruned model to its parent (SPEC 4.4; seed 002, Sec. 4).

For every configured noise level eps (``[gates.functional] eps``), on a seeded
class-stratified sample of ``max_images`` images of the pair's dataset, with ``repetitions`` seeded draws of
``x + U(-eps, eps)`` in normalised input space (no clipping; the same noise for
parent, pruned and reference):

- ``test_agreement_with_parent[<pair>-eps<e>]``: mean agreement of the pruned
  model's argmax with the parent's must be >= ``min_agreement``.
- ``test_closer_than_reference[<pair>-eps<e>]`` (pairs with a ``reference``
  only): the pruned model must agree with the parent at least
  ``min_reference_margin`` (default 0) more than the separately trained
  reference does, at *each* eps (a per-eps gate points at the noise level
  where the pruned model drifted; a mean over eps would hide it).
- ``test_informative_features[<pair>]`` (only with ``backselect = true``;
  slow): overlap of the informative pixels (BackSelect) of parent, pruned
  model and reference; reported, not gated.

Both gates take ``[gates.functional] mode``: confident / lenient use the 95%
bootstrap interval over test images (the same images for pruned and reference).
Agreement and softmax distance vs eps for pruned-vs-parent and
reference-vs-parent go to the report's "Functional similarity" section.
Tests for pairs that lack what they need are not generated.
"""

from __future__ import annotations

import pytest

from prunecheck.gates.decide import COMPUTE_ERRORS, cannot_compute, failed_closed

SUITE = "functional"
GATE = "functional"


# -- helpers -------------------------------------------------------------------------------
def _similarity(pair, options, eps, names):
    from prunecheck.gates.similarity import noise_similarity, sample_rows

    workspace = pair.workspace
    data = sample_rows(workspace.dataset(pair.spec.dataset), options["max_images"], seed=workspace.settings.run.seed)
    points = noise_similarity(
        workspace.engine,
        workspace.model(pair.spec.parent),
        [workspace.model(name) for name in names],
        data,
        eps,
        repetitions=options["repetitions"],
    )
    return points, len(data)


def _result(pair, options, *points, metric, threshold_name, eps, details, pruned=None):
    from prunecheck.gates.similarity import similarity_result

    run = pair.workspace.settings.run
    try:
        return similarity_result(
            *points, mode=options["mode"], threshold=float(options[threshold_name]),
            threshold_name=threshold_name, metric=metric, n_resamples=run.bootstrap_resamples, seed=run.seed,
            subject=pair.name, view=f"noise{eps:g}", details=details, pruned=pruned)
    except COMPUTE_ERRORS as exc:
        return _failed(pair, eps, metric, threshold_name, float(options[threshold_name]), exc)


def _failed(pair, eps, metric, threshold_name, threshold, exc):
    return failed_closed(
        name=GATE, metric=metric, threshold=threshold, threshold_name=threshold_name, direction="min",
        reason=cannot_compute(exc), subject=pair.name, view=f"noise{eps:g}",
    )


# -- tests -----------------------------------------------------------------------------------
def test_agreement_with_parent(pair, gate, eps):
    options = gate.config(SUITE)
    names = [pair.spec.pruned] + ([pair.spec.reference] if pair.spec.reference else [])
    metric = "agreement with parent"
    try:
        points, n_images = _similarity(pair, options, eps, names)
    except COMPUTE_ERRORS as exc:
        gate.check(_failed(pair, eps, metric, "min_agreement", options["min_agreement"], exc))
        return
    pruned = points[0]
    reference = points[1] if len(points) > 1 else None
    gate.record(SUITE, pair.name, {
        "kind": "noise",
        "eps": float(eps),
        "repetitions": len(pruned.agreement),
        "images": n_images,
        "parent": pair.spec.parent,
        "pruned": pruned.to_dict(),
        "reference": reference.to_dict() if reference else None,
        "min_agreement": options["min_agreement"],
    })
    gate.check(_result(pair, options, pruned, metric=metric, threshold_name="min_agreement", eps=eps, details={
        "mean_distance": pruned.mean_distance, "repetitions": len(pruned.agreement), "images": n_images}))


@pytest.mark.prunecheck_pairs(lambda spec, settings: spec.reference is not None)
def test_closer_than_reference(pair, gate, eps):
    options = gate.config(SUITE)
    margin_needed = options["min_reference_margin"]
    try:
        (pruned, reference), _ = _similarity(pair, options, eps, [pair.spec.pruned, pair.spec.reference])
    except COMPUTE_ERRORS as exc:
        gate.check(_failed(pair, eps, "agreement with parent, pruned minus reference",
                           "min_reference_margin", margin_needed, exc))
        return
    metric = (
        f"agreement with parent of pruned '{pair.spec.pruned}' minus "
        f"reference '{pair.spec.reference}' ({reference.mean_agreement:.4f})"
    )
    gate.check(_result(pair, options, pruned, reference, metric=metric, threshold_name="min_reference_margin",
                       eps=eps, pruned=pruned.mean_agreement, details={
                           "reference_agreement": reference.mean_agreement, "pruned_distance": pruned.mean_distance,
                           "reference_distance": reference.mean_distance}))


@pytest.mark.slow
@pytest.mark.prunecheck_pairs(lambda spec, settings: bool(settings.gates[SUITE]["backselect"]))
def test_informative_features(pair, gate):
    from prunecheck.gates.similarity import informative_features

    options = gate.config(SUITE)
    payload = informative_features(
        pair.workspace,
        pair.spec,
        images=options["backselect_images"],
        pixels_per_round=options["backselect_pixels_per_round"],
        keep_fraction=options["backselect_keep_fraction"],
    )
    gate.record(SUITE, pair.name, payload)
