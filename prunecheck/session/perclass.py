"""The populations the PIE report compares, gathered from a pair's models (Hooker et al. 2019).

The gate is :func:`prunecheck.gates.perclass.pie_report`; ``Pair.pie_populations``
(:mod:`prunecheck.session.pairs`) turns a failure into ``Unavailable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunecheck.config.settings import PairSpec
from prunecheck.gates.perclass import PiePopulations

if TYPE_CHECKING:
    from prunecheck.session.workspace import Workspace

__all__ = ["pie_populations"]


def pie_populations(workspace: Workspace, spec: PairSpec) -> PiePopulations:
    """The pair's unpruned and pruned populations on its nominal test data.

    Unpruned: the parent, plus the reference when the pair has one; pruned: the
    pruned model. Ensembles vote with each member, so an ensemble of pruned seeds
    is a population of its own. The parent's and pruned model's predictions are the
    accuracy margin's (cached).
    """
    parent, pruned = workspace.predict_pair(spec)
    unpruned = [parent]
    if spec.reference:
        unpruned.append(workspace.predict(spec.reference, spec.dataset))
    return PiePopulations(unpruned, [pruned], workspace.dataset(spec.dataset))
