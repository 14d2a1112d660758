"""Uncertainty drift (SPEC 4.2; seeds 000, 001, 003) for every configured pair and method.

One test node per (pair, uncertainty method) in ``pairs[].methods`` (MSP always):

- ``test_uncertainty_drift``: ΔAUSE <= max_ause_increase, ΔECE <= max_ece_increase,
  ΔNLL <= max_nll_increase (pruned minus parent, nominal data, gate modes apply).
- ``test_uncertainty_ood`` (pairs with an ``ood_dataset`` only): the pruned model's
  mean predictive entropy, and for MC dropout / ensembles its disagreement, must not
  fall below the parent's by more than ``ood_max_entropy_drop`` / ``ood_max_disagreement_drop``.
- ``test_uncertainty_blur``: mean uncertainty must rise with the Gaussian blur radius
  (Spearman >= min_blur_spearman) for the pruned model whenever it does for the parent.

Thresholds: ``[gates.uncertainty]``. The logic lives in :mod:`prunecheck.gates.uncertainty`.
"""

import pytest

from prunecheck.gates import uncertainty
from prunecheck.plugin import get_settings

CASES = {
    "uncertainty_case": uncertainty.drift_cases,  # every (pair, method)
    "ood_case": uncertainty.ood_cases,  # only pairs with an ood_dataset: no node for the others
}


def pytest_generate_tests(metafunc):
    for name, cases in CASES.items():
        if name in metafunc.fixturenames:
            found = cases(get_settings(metafunc.config))
            # Nothing configured (e.g. no pair has an ood_dataset): the node is deselected, not skipped.
            params = found or [pytest.param(None, marks=pytest.mark.prunecheck_unconfigured)]
            ids = [uncertainty.case_id(c) for c in found] or ["no-pair"]
            metafunc.parametrize(name, params, ids=ids, indirect=True)


def _case(request, workspace):
    from prunecheck.session.workspace import Pair

    spec, method = request.param
    for name in (spec.parent, spec.pruned):
        workspace.model(name)  # a model that does not load is a setup error, reported once
    return Pair(spec, workspace), method


@pytest.fixture
def uncertainty_case(request, prunecheck_workspace):
    return _case(request, prunecheck_workspace)


@pytest.fixture
def ood_case(request, prunecheck_workspace):
    return _case(request, prunecheck_workspace)


def test_uncertainty_drift(uncertainty_case, gate):
    pair, method = uncertainty_case
    gate.check(*uncertainty.run_drift(gate, pair, method))


def test_uncertainty_ood(ood_case, gate):
    pair, method = ood_case
    gate.check(*uncertainty.run_ood(gate, pair, method))


def test_uncertainty_blur(uncertainty_case, gate):
    pair, method = uncertainty_case
    gate.check(*uncertainty.run_blur(gate, pair, method))
