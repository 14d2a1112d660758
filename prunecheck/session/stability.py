"""The accuracies the pruning-instability gate needs, measured on a pair's models (seed 004, Sec. 3).

:func:`step_accuracies` plans the pair's steps (:func:`prunecheck.gates.stability.plan_steps`),
loads the model before and after each step (building the masked parent for a ``"mask"``
step), predicts them all in one batched pass on the pair's nominal test data and
returns their top-1 accuracies. The gate (:func:`prunecheck.gates.stability.pruning_instability`)
turns them into instabilities and results; ``Pair.step_accuracies``
(:mod:`prunecheck.session.pairs`) turns a failure into ``Unavailable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from prunecheck.config.settings import PairSpec
from prunecheck.gates.stability import StepAccuracy, masked_parent_model, plan_steps

if TYPE_CHECKING:
    from prunecheck.nn.models import LoadedModel
    from prunecheck.session.workspace import Workspace

__all__ = ["step_accuracies"]


def step_accuracies(workspace: Workspace, spec: PairSpec, pairs: Sequence[PairSpec] = ()) -> list[StepAccuracy]:
    """Predict every model the pair's steps need (one batched pass) and measure each step's accuracies.

    Args:
        workspace: A :class:`prunecheck.session.workspace.Workspace` (uses ``model``,
            ``dataset`` and ``engine``).
        spec: The pair.
        pairs: Every configured pair (to find the fine-tuned models of earlier steps;
            see :func:`~prunecheck.gates.stability.plan_steps`).

    Returns:
        One :class:`~prunecheck.gates.stability.StepAccuracy` per step, in order.

    Raises:
        ModelError: A model does not load or a mask does not fit.
        ValueError: An accuracy cannot be computed (e.g. NaN predictions).
    """
    from prunecheck import metrics

    steps = plan_steps(spec, pairs)
    models: dict[str, LoadedModel] = {}
    after_names: list[str] = []
    for step in steps:
        models.setdefault(step.before, workspace.model(step.before))
        if step.kind == "mask":
            masked = masked_parent_model(
                workspace.model(spec.parent), workspace.model(spec.pruned), spec.mask_mode
            )
            models.setdefault(masked.name, masked)
            after_names.append(masked.name)
        else:
            after = str(step.after)  # always set for checkpoint and schedule steps
            models.setdefault(after, workspace.model(after))
            after_names.append(after)
    names = list(models)
    predictions = workspace.engine.predict_many([models[n] for n in names], workspace.dataset(spec.dataset))
    accuracy = {n: metrics.accuracy(p.probs, p.labels) for n, p in zip(names, predictions)}
    return [
        StepAccuracy(step, after, accuracy[step.before], accuracy[after]) for step, after in zip(steps, after_names)
    ]
