"""Corruption robustness and prune potential (SPEC 4.3, seed 002 Sec. 5).

- ``test_corruption_margin[<pair>-<corruption>-<severity>]`` (and ``[<pair>-noise<eps>]``):
  accuracy(parent) - accuracy(pruned) <= ``[gates.corruptions] max_drop`` on that view.
- ``test_prune_accuracy_curves[<family>]``: the family's prune-accuracy curves and prune
  potential per view, for the report (fails only when they cannot be computed).
- ``test_prune_potential[<family>]``: deployed ratio <= prune potential (``policy`` mean | min).
- ``test_excess_error[<family>]``: excess error (deployed) - excess error (parent) <= ``max_excess_error_diff``.
Views: ``corruptions`` x ``severities``, plus one L-inf noise view per ``noise_levels`` eps > 0.
The family gates run only for families with a ``deployed`` member.
"""

import pytest

from prunecheck.gates import robustness

deployed = pytest.mark.prunecheck_families(lambda spec, settings: spec.deployed is not None)


def test_corruption_margin(pair, shift, gate):
    parent, pruned = pair.predictions(shift.view)
    gate.check(robustness.corruption_margin(parent, pruned, gate.config(robustness.GATE), shift=shift.id,
                                            source=pair.view_source(shift.view), subject=pair.name, **gate.bootstrap))


def test_prune_accuracy_curves(family, gate):
    options = gate.config(robustness.GATE)
    gate.check(robustness.curves_report(family.curves(options), options, subject=family.name, **gate.bootstrap))


@deployed
def test_prune_potential(family, gate):
    options = gate.config(robustness.GATE)
    gate.check(robustness.prune_potential_gate(family.curves(options), options, subject=family.name, **gate.bootstrap))


@deployed
def test_excess_error(family, gate):
    options = gate.config(robustness.GATE)
    gate.check(robustness.excess_error_gate(family.curves(options), options, subject=family.name, **gate.bootstrap))
