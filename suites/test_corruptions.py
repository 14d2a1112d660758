"""Corruption robustness and prune potential (SPEC 4.3, seed 002 Sec. 5).

- ``test_corruption_margin[<pair>-<corruption>-<severity>]`` (and ``[<pair>-noise<eps>]``):
  accuracy(parent) - accuracy(pruned) <= ``[gates.corruptions] max_drop`` on that view.
- ``test_prune_accuracy_curves[<family>]``: the family's prune-accuracy curves and prune
  potential per view, for the report (fails only when they cannot be computed).
- ``test_prune_potential[<family>]``: deployed ratio <= prune potential (``policy`` mean | min
  over the configured corruptions).
- ``test_excess_error[<family>]``: excess error (deployed) - excess error (parent) <=
  ``max_excess_error_diff``.

The family gates exist only for families with a ``deployed`` member. The views come
from ``corruptions`` x ``severities`` plus one L-inf noise view per ``noise_levels`` eps > 0.
"""

import pytest

from prunecheck.gates import robustness


def test_corruption_margin(pair, shift, gate):
    parent, pruned = pair.predictions(shift.view)
    result = gate.degradation(
        robustness.GATE, "accuracy", parent, pruned, threshold_key="max_drop", subject=pair.name
    )
    gate.record("corruptions", pair.name, {
        "kind": "pair", "view": shift.id, "parent_accuracy": result.parent, "pruned_accuracy": result.pruned,
        "source": pair.view_source(shift.view),
    })
    gate.check(result)


def test_prune_accuracy_curves(family, gate):
    payload = robustness.family_payload(family, gate.config(robustness.GATE))
    curve_keys = ("parent", "members", "ratios", "views", "parent_accuracy", "accuracy", "delta")
    gate.record("corruptions", family.name, {"kind": "family", **{k: payload[k] for k in curve_keys}})
    gate.record("prune_potential", family.name, payload)


# The family gates need a deployed member to gate; families without one only get the curves.
deployed = pytest.mark.prunecheck_families(lambda spec, settings: spec.deployed is not None)


@deployed
def test_prune_potential(family, gate):
    gate.check(robustness.family_gate("prune_potential", family, gate.config(robustness.GATE)))


@deployed
def test_excess_error(family, gate):
    gate.check(robustness.family_gate("excess_error", family, gate.config(robustness.GATE)))
