"""Functional similarity of each pruned model to its parent (SPEC 4.4; seed 002, Sec. 4).

Per noise level eps (``[gates.functional] eps``), on a seeded class-stratified sample of ``max_images``
test images with ``repetitions`` seeded draws of ``x + U(-eps, eps)`` in normalised input space (no
clipping; the same noise for parent, pruned and reference):

- ``test_agreement_with_parent[<pair>-eps<e>]``: mean argmax agreement of pruned and parent >= ``min_agreement``.
- ``test_closer_than_reference[<pair>-eps<e>]`` (pairs with a ``reference``): the pruned model agrees with
  the parent at least ``min_reference_margin`` more than the separately trained reference, at each eps.
- ``test_informative_features[<pair>]`` (``backselect = true``; slow): overlap of the informative pixels
  (BackSelect) of parent, pruned model and reference; reported, not gated.
``mode`` confident / lenient uses the 95% bootstrap interval over the test images.
"""

import pytest

from prunecheck.gates import similarity

with_reference = pytest.mark.prunecheck_pairs(lambda spec, settings: spec.reference is not None)
with_backselect = pytest.mark.prunecheck_pairs(lambda spec, settings: bool(settings.gates["functional"]["backselect"]))


def test_agreement_with_parent(pair, gate, eps):
    options = gate.config(similarity.SUITE)
    measured = pair.noise_similarity(eps, options)
    gate.check(similarity.agreement(measured, options, subject=pair.name, eps=eps, **gate.bootstrap))


@with_reference
def test_closer_than_reference(pair, gate, eps):
    options = gate.config(similarity.SUITE)
    measured = pair.noise_similarity(eps, options)
    gate.check(similarity.closer_than_reference(measured, options, subject=pair.name, eps=eps, **gate.bootstrap))


@pytest.mark.slow
@with_backselect
def test_informative_features(pair, gate):
    features = pair.informative_features(gate.config(similarity.SUITE))
    gate.check(similarity.informative_features(features, subject=pair.name))
