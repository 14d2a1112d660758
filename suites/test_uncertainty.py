"""Uncertainty drift (SPEC 4.2; seeds 000, 001, 003) for every configured pair and method.

One test node per (pair, uncertainty method) in ``pairs[].methods`` (MSP always):

- ``test_uncertainty_drift``: ΔAUSE <= max_ause_increase, ΔECE <= max_ece_increase,
  ΔNLL <= max_nll_increase (pruned minus parent, nominal data, gate modes apply).
- ``test_uncertainty_ood`` (pairs with an ``ood_dataset`` only): the pruned model's
  mean predictive entropy, and for MC dropout / ensembles its disagreement, must not
  fall below the parent's by more than ``ood_max_entropy_drop`` / ``ood_max_disagreement_drop``.
- ``test_uncertainty_blur``: mean uncertainty must rise with the Gaussian blur radius
  (Spearman >= min_blur_spearman) for the pruned model whenever it does for the parent.

Thresholds: ``[gates.uncertainty]``. The pair gathers the method's predictions; the gates
are pure functions of them (:mod:`prunecheck.gates.uncertainty`).
"""

import pytest

from prunecheck.gates import uncertainty


def test_uncertainty_drift(pair, method, gate):
    options = gate.config(uncertainty.SUITE)
    predictions = pair.uncertainty_predictions(method, options)
    gate.check(uncertainty.drift(predictions, options, method=method, subject=pair.name, **gate.bootstrap))


@pytest.mark.prunecheck_pairs(lambda spec, settings: spec.ood_dataset is not None)
def test_uncertainty_ood(pair, method, gate):
    options = gate.config(uncertainty.SUITE)
    predictions = pair.ood_predictions(method, options)
    gate.check(uncertainty.ood(predictions, options, method=method, subject=pair.name, **gate.bootstrap))


def test_uncertainty_blur(pair, method, gate):
    options = gate.config(uncertainty.SUITE)
    gate.check(uncertainty.blur(pair.blur_predictions(method, options), options, method=method, subject=pair.name))
