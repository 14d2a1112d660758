"""Accuracy margin (SPEC 4.1), the damage the average hides, and efficiency facts (SPEC 4.6).

- ``test_accuracy_margin[<pair>]``: accuracy(parent) - accuracy(pruned) <= ``[gates.accuracy_margin]
  max_drop`` on nominal data (and <= ``max_relative_drop`` x accuracy(parent) when that is set).
- ``test_class_accuracy[<pair>]``: the worst per-class accuracy drop <= ``[gates.class_accuracy]
  max_class_drop`` over the classes with at least ``min_class_images`` images (Hooker et al. 2019).
- ``test_pruning_identified_exemplars[<pair>]``: images whose modal prediction differs between the
  unpruned and the pruned population, reported; gated when ``[gates.pies] max_pie_fraction`` is set.
- ``test_efficiency_facts[<pair>]``: reported with every pair; fails only when they cannot be computed.

All but the efficiency facts use the same cached nominal predictions.
"""

from prunecheck.gates import accuracy, perclass


def test_accuracy_margin(pair, gate):
    gate.check(accuracy.margin(*pair.predictions(), gate.config(accuracy.GATE), subject=pair.name, **gate.bootstrap))


def test_class_accuracy(pair, gate):
    options = gate.config(perclass.CLASS_GATE)
    gate.check(perclass.class_accuracy(*pair.predictions(), options, subject=pair.name, **gate.bootstrap))


def test_pruning_identified_exemplars(pair, gate):
    gate.check(perclass.pie_report(pair.pie_populations(), gate.config(perclass.PIE_GATE), subject=pair.name))


def test_efficiency_facts(pair, gate):
    gate.record("efficiency", pair.name, pair.efficiency())
