"""A family's prune-accuracy curves (seed 002, Sec. 5), predicted once per session.

The family tests of ``suites/test_corruptions.py`` (curves, prune potential, excess
error) all read the same curves: they are predicted here, one ``predict_many`` call per
view, memoised per workspace, family and view set, and handed to the pure gate
functions of :mod:`prunecheck.gates.robustness` (``Family.curves`` in
:mod:`prunecheck.session.pairs` turns a failure into ``Unavailable``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from prunecheck.config.settings import FamilySpec
from prunecheck.core.views import NOMINAL
from prunecheck.engine import compact
from prunecheck.gates.robustness import NOMINAL_ID, PruneAccuracyCurves, Shift, configured_shifts, curves_from_accuracies

if TYPE_CHECKING:  # pragma: no cover
    from prunecheck.session.workspace import Workspace

# Curves measured in this session, per workspace: the three family tests need the same ones.
_MEMO: "weakref.WeakKeyDictionary[Any, dict[tuple, PruneAccuracyCurves]]" = weakref.WeakKeyDictionary()


def prune_accuracy_curves(workspace: Workspace, spec: FamilySpec, options: Mapping[str, Any]) -> PruneAccuracyCurves:
    """The family's curves on nominal data and on every shift ``options`` selects
    (``[gates.corruptions]``); raises as :func:`family_curves`."""
    return family_curves(workspace, spec, configured_shifts(options))


def family_curves(workspace: Workspace, spec: FamilySpec, shifts: Sequence[Shift]) -> PruneAccuracyCurves:
    """Predict the family on nominal data and on every shift; one ``predict_many`` call per view.

    Member ratios are the configured ``FamilyMember.ratio`` or, when absent, the
    measured :func:`prunecheck.nn.efficiency.pair_ratios` ``prune_ratio``: the share
    of the parent's prunable weights the member removed, zeroed or left removable.
    Results are memoised per workspace, so the family tests of one session predict
    (or read the cache) once.

    Raises:
        ValueError: a prediction or accuracy that cannot be computed (e.g. NaN outputs).
    """
    key = (spec, tuple(shifts))
    memo = _MEMO.setdefault(workspace, {})
    if key in memo:
        return memo[key]
    from prunecheck.nn.efficiency import pair_ratios

    names = [m.model for m in spec.members]
    parent_facts = workspace.facts(spec.parent, spec.dataset) if any(m.ratio is None for m in spec.members) else None
    ratios = [
        m.ratio if m.ratio is not None else pair_ratios(parent_facts, workspace.facts(m.model, spec.dataset)).prune_ratio
        for m in spec.members
    ]
    parent_accuracy: dict[str, float] = {}
    accuracy: dict[str, list[float]] = {}
    correct: dict[str, np.ndarray] = {}
    for label, view in ((NOMINAL_ID, NOMINAL), *((s.id, s.view) for s in shifts)):
        predictions = workspace.predict_many([spec.parent, *names], spec.dataset, view)
        values, hits = [], []
        for p in predictions:
            try:
                values.append(compact.score(p, "accuracy"))  # corruption views may be stored compact
            except ValueError as exc:
                raise ValueError(f"accuracy of {p.model} on {spec.dataset}/{label}: {exc}") from None
            hits.append(p.correct())  # per-image, for the family bootstrap
        parent_accuracy[label], accuracy[label] = values[0], values[1:]
        correct[label] = np.stack(hits)
    curves = curves_from_accuracies(
        family=spec.name, parent=spec.parent, members=names, ratios=ratios,
        parent_accuracy=parent_accuracy, accuracy=accuracy, deployed=spec.deployed, correct=correct,
    )
    memo[key] = curves
    return curves


def forget() -> None:
    """Drop every memoised curve (the demo's margin probe re-derives them from resampled predictions)."""
    _MEMO.clear()
