"""The predictions an uncertainty method needs (SPEC 4.2), gathered for the pure gates.

``suites/test_uncertainty.py`` asks a pair for them (``Pair.uncertainty_predictions``,
``Pair.ood_predictions``, ``Pair.blur_predictions`` in :mod:`prunecheck.session.pairs`,
which turn a failure into :class:`~prunecheck.gates.decide.Unavailable`) and hands them
to :mod:`prunecheck.gates.uncertainty`. This module decides which predictions a method
uses: the model's probabilities (``msp``, and ``ensemble`` entries, whose members the
engine predicts), or ``mc_passes`` seeded MC dropout passes (``mc_dropout``); it checks
that the method applies to the models and that MC passes really differ.

Nothing is held here beyond the engine's prediction cache: a method's rows (passes x
images x classes, per view) are read back from it when another test needs them, rather
than kept in memory for the whole session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from prunecheck.config.settings import PairSpec
from prunecheck.core.errors import GateError
from prunecheck.core.views import NOMINAL, View, blur
from prunecheck.gates.uncertainty import check_passes_differ, method_problem

if TYPE_CHECKING:  # pragma: no cover
    from prunecheck.engine.predictor import Predictions
    from prunecheck.session.workspace import Workspace

PairPredictions = tuple["Predictions", "Predictions"]


def mc_passes_for(method: str, options: Mapping[str, Any]) -> int:
    """Forward passes per model for ``method``: ``mc_passes`` for MC dropout, else 0 (deterministic)."""
    return int(options["mc_passes"]) if method == "mc_dropout" else 0


def method_predictions(
    workspace: Workspace, spec: PairSpec, method: str, options: Mapping[str, Any], view: View = NOMINAL, *,
    dataset: str | None = None,
) -> PairPredictions:
    """(parent, pruned) predictions of ``method`` on one view of the pair's test set (or of
    ``dataset``), cached like all predictions.

    Raises:
        GateError: the method does not apply to the pair's models, or its MC passes are identical.
    """
    problem = method_problem(
        method, workspace.model(spec.parent), workspace.model(spec.pruned), mc_passes=options["mc_passes"],
    )
    if problem:
        raise GateError(f"pair '{spec.name}': {problem}")
    parent, pruned = workspace.predict_pair(spec, view, mc_passes=mc_passes_for(method, options), dataset=dataset)
    if method == "mc_dropout":
        for p in (parent, pruned):
            check_passes_differ(p)
    return parent, pruned


def blur_views(radii) -> list[View]:
    """Views for the blur radii; radius 0 is the nominal view (same images, shared cache)."""
    return [NOMINAL if float(r) == 0.0 else blur(float(r)) for r in radii]


def ood_predictions(
    workspace: Workspace, spec: PairSpec, method: str, options: Mapping[str, Any]
) -> PairPredictions:
    """``method``'s predictions on the pair's ``ood_dataset`` (with the pair dataset's output width).

    Raises:
        GateError: the pair has no ``ood_dataset`` (and as :func:`method_predictions`).
    """
    if spec.ood_dataset is None:
        raise GateError("the pair has no ood_dataset")
    return method_predictions(workspace, spec, method, options, dataset=spec.ood_dataset)


def blur_predictions(
    workspace: Workspace, spec: PairSpec, method: str, options: Mapping[str, Any]
) -> tuple[PairPredictions, ...]:
    """``method``'s predictions at every ``blur_radii`` radius, in that order."""
    return tuple(
        method_predictions(workspace, spec, method, options, view) for view in blur_views(options["blur_radii"])
    )
