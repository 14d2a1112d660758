"""The ``pair`` and ``family`` fixtures' values: what a suite asks for, gathered by the session.

Each suite-facing method returns what a pure gate function of :mod:`prunecheck.gates`
takes (predictions, curves, a measurement), or
:class:`~prunecheck.gates.decide.Unavailable` with the reason it could not be gathered
(:func:`~prunecheck.gates.decide.gathered`); the gate calls
:func:`~prunecheck.gates.decide.available` inside its fail-closed build, so a model that
does not load or NaN outputs are a failed gate with the reason. The measuring is done by
one module per concern, which takes the workspace and the pair's or family's spec:

- :mod:`prunecheck.session.uncertainty`: an uncertainty method's predictions (nominal, OOD, blur);
- :mod:`prunecheck.session.families`: prune-accuracy curves of a family;
- :mod:`prunecheck.session.similarity`: noise similarity and BackSelect features;
- :mod:`prunecheck.session.stability`: the accuracies around each pruning step;
- :mod:`prunecheck.session.perclass`: the populations the PIE report compares.

Imports point one way: this module -> the concern modules -> :mod:`prunecheck.session.workspace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from prunecheck.config.settings import FamilySpec, PairSpec
from prunecheck.core.views import NOMINAL, View
from prunecheck.engine.predictor import Predictions
from prunecheck.gates.decide import Unavailable, gathered
from prunecheck.gates.perclass import PiePopulations
from prunecheck.gates.robustness import PruneAccuracyCurves
from prunecheck.gates.similarity import InformativeFeatures, NoiseSimilarity
from prunecheck.gates.stability import StepAccuracy
from prunecheck.session import families, perclass, similarity, stability, uncertainty
from prunecheck.session.workspace import Workspace

__all__ = ["Pair", "Family"]

PairPredictions = tuple[Predictions, Predictions]
Options = Mapping[str, Any]


@dataclass
class Pair:
    """A (parent, pruned) pair as the suites see it: the ``pair`` fixture's value."""

    spec: PairSpec
    workspace: Workspace

    @property
    def name(self) -> str:
        return self.spec.name

    def predictions(
        self, view: View = NOMINAL, *, mc_passes: int = 0, dataset: str | None = None, rows: bool | None = None
    ) -> PairPredictions:
        """(parent, pruned) predictions on the pair's dataset (or ``dataset``) under ``view``
        (:meth:`Workspace.predict_pair`). Raises when they cannot be predicted."""
        return self.workspace.predict_pair(self.spec, view, mc_passes=mc_passes, dataset=dataset, rows=rows)

    def view_source(self, view: View) -> str:
        """Where the pair dataset's images under ``view`` come from (see ``Workspace.view_source``)."""
        return self.workspace.view_source(self.spec.dataset, view)

    def efficiency(self) -> dict:
        """Efficiency facts of both models and the compression ratio (SPEC 4.6)."""
        from prunecheck.nn.efficiency import compression_ratio, pair_ratios

        parent = self.workspace.facts(self.spec.parent, self.spec.dataset)
        pruned = self.workspace.facts(self.spec.pruned, self.spec.dataset)
        return {
            "parent_name": self.spec.parent,
            "pruned_name": self.spec.pruned,
            "parent": dataclasses.asdict(parent),
            "pruned": dataclasses.asdict(pruned),
            "compression_ratio": compression_ratio(parent, pruned),
            "ratios": dataclasses.asdict(pair_ratios(parent, pruned)),
        }

    # -- uncertainty (prunecheck.session.uncertainty) -------------------------------------
    def uncertainty_predictions(self, method: str, options: Options) -> PairPredictions | Unavailable:
        """(parent, pruned) predictions of uncertainty ``method`` on the test set, or ``Unavailable``."""
        return gathered(lambda: uncertainty.method_predictions(self.workspace, self.spec, method, options))

    def ood_predictions(self, method: str, options: Options) -> PairPredictions | Unavailable:
        """(parent, pruned) predictions of ``method`` on the pair's ``ood_dataset``, or ``Unavailable``."""
        return gathered(lambda: uncertainty.ood_predictions(self.workspace, self.spec, method, options))

    def blur_predictions(self, method: str, options: Options) -> tuple[PairPredictions, ...] | Unavailable:
        """(parent, pruned) predictions of ``method`` per ``blur_radii`` radius, or ``Unavailable``."""
        return gathered(lambda: uncertainty.blur_predictions(self.workspace, self.spec, method, options))

    # -- functional similarity (prunecheck.session.similarity) ----------------------------
    def noise_similarity(self, eps: float, options: Options) -> NoiseSimilarity | Unavailable:
        """The pruned model (and reference) compared with the parent at noise level ``eps``
        (``[gates.functional]`` options; memoised), or ``Unavailable``."""
        return gathered(lambda: similarity.measure_noise_similarity(self.workspace, self.spec, eps, options))

    def informative_features(self, options: Options) -> InformativeFeatures | Unavailable:
        """BackSelect's informative pixels of parent, pruned model and reference, or ``Unavailable``."""
        return gathered(lambda: similarity.measure_informative_features(self.workspace, self.spec, options))

    # -- pruning instability (prunecheck.session.stability) -------------------------------
    def step_accuracies(self) -> list[StepAccuracy] | Unavailable:
        """The accuracies before and after each of the pair's pruning steps, or ``Unavailable``."""
        return gathered(lambda: stability.step_accuracies(self.workspace, self.spec, self.workspace.settings.pairs))

    # -- PIEs (prunecheck.session.perclass) -----------------------------------------------
    def pie_populations(self) -> PiePopulations | Unavailable:
        """The unpruned and pruned populations the PIE report compares, or ``Unavailable``."""
        return gathered(lambda: perclass.pie_populations(self.workspace, self.spec))


@dataclass
class Family:
    """A parent and its pruned versions: the ``family`` fixture's value."""

    spec: FamilySpec
    workspace: Workspace

    @property
    def name(self) -> str:
        return self.spec.name

    def curves(self, options: Options) -> PruneAccuracyCurves | Unavailable:
        """Prune-accuracy curves on nominal data and every view ``options`` (``[gates.corruptions]``)
        selects, memoised per family and view set, or ``Unavailable`` (prunecheck.session.families)."""
        return gathered(lambda: families.prune_accuracy_curves(self.workspace, self.spec, options))
