"""Pruning instability (seed 004, Sec. 3): which accuracies to compare, masked parents, the gate.

The gate (:func:`pruning_instability`) is a pure function of the step accuracies that
:func:`prunecheck.session.stability.step_accuracies` measures on the pair's models.

Seed 004 defines the instability of pruning iteration *k* from the top-1 test
accuracy right before the pruning event and right after it (before any
re-training): ``(acc_before - acc_after) / acc_before``
(:func:`prunecheck.metrics.instability`). A pair states its pruning step(s) in
one of three ways; the first that applies is used:

1. ``schedule`` (pre-fine-tune checkpoints of successive steps): one step per
   checkpoint. Step 1 starts from the parent. Step *k* > 1 starts from the
   *fine-tuned* model of step *k*-1: ``schedule_finetuned[k-2]`` when the pair
   lists them, else the ``pruned`` model of any configured pair whose
   ``pre_finetune`` is checkpoint *k*-1 (the layout ``prunecheck prune``
   writes). When neither names it, the parent is used
   instead and the step is marked ``acc_before_source = "parent-fallback"``:
   its number is then the accuracy lost from the parent, not from the step's
   true starting point.
2. ``pre_finetune``: one step, parent -> that checkpoint.
3. Otherwise: one step, parent -> the parent with the pruned model's zeros
   applied (:func:`masked_parent`), the one-shot version of the pruning.
   This is **not** seed 004's per-step instability: the final mask of an
   iterative pruning removes, in one shot, what several steps removed with
   fine-tuning in between, so its damage is much larger than any real step's
   (on the demo zoo, ``wt80``'s three steps cost 0.012, 0.168 and 0.048, its
   one-shot mask 0.562). It is reported and gated as **one-shot mask damage**, with
   its own threshold ``max_mask_damage`` (:func:`step_results`).

Masks (``PairSpec.mask_mode``):

- ``"unstructured"``: every Conv/Linear weight that is exactly 0 in the pruned
  model is set to 0 in a copy of the parent (:func:`prunecheck.nn.models.apply_mask`).
- ``"channels"``: every output channel (a filter of a ``Conv*d``, a row of a
  ``Linear``) whose weights are all 0 in the pruned model is removed from the
  parent: its weight slice and bias entry are zeroed, and so are ``weight``
  (gamma) and ``bias`` (beta) of the BatchNorm that directly follows a conv
  (:func:`prunecheck.nn.layers.conv_bn_pairs`), so the channel outputs
  exactly 0 as if it were gone. Other zeros of the pruned model are ignored.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from prunecheck.config.settings import PairSpec
from prunecheck.core.errors import ModelError
from prunecheck.gates.decide import Outcome, Unavailable, available, decide, fail_closed_outcome
from prunecheck.nn.models import LoadedModel, apply_mask, mask_transfer_problem, model_from_module, zero_mask

__all__ = [
    "MaskMode",
    "Step",
    "plan_steps",
    "finetuned_after",
    "channel_mask",
    "apply_channel_mask",
    "masked_parent",
    "masked_parent_model",
    "StepAccuracy",
    "StepOutcome",
    "score_steps",
    "step_results",
    "has_steps",
    "pruning_instability",
]

MaskMode = Literal["unstructured", "channels"]
MASK_MODES: tuple[str, ...] = ("unstructured", "channels")


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    """One pruning step to evaluate.

    Attributes:
        index: 1-based step number.
        total: number of steps of the pair.
        before: model entry whose accuracy is ``acc_before``.
        after: model entry whose accuracy is ``acc_after``; ``None`` when
            ``kind == "mask"`` (the masked parent is built in memory).
        kind: ``"mask"`` (masked parent), ``"checkpoint"`` (``pre_finetune``)
            or ``"schedule"`` (one checkpoint of ``schedule``).
        acc_before_source: ``"parent"``, ``"finetuned"`` (fine-tuned model of
            the previous step) or ``"parent-fallback"`` (the previous step's
            fine-tuned model is not configured; the parent stands in).
    """

    index: int
    total: int
    before: str
    after: str | None
    kind: Literal["mask", "checkpoint", "schedule"]
    acc_before_source: Literal["parent", "finetuned", "parent-fallback"] = "parent"


def finetuned_after(checkpoint: str, pairs: Sequence[PairSpec]) -> str | None:
    """The fine-tuned model of the step whose pre-fine-tune checkpoint is ``checkpoint``.

    It is the ``pruned`` model of the first pair (in config order) whose
    ``pre_finetune`` is ``checkpoint``; ``None`` when no pair says so.
    """
    for spec in pairs:
        if spec.pre_finetune == checkpoint:
            return spec.pruned
    return None


def plan_steps(spec: PairSpec, pairs: Sequence[PairSpec] = ()) -> list[Step]:
    """The pruning steps of a pair, in order (see the module docstring).

    Args:
        spec: The pair.
        pairs: Every configured pair (to find fine-tuned models of earlier steps);
            ``spec`` itself is always considered.

    Returns:
        One :class:`Step` per checkpoint of ``spec.schedule``, else one step.

    Example:
        >>> a = PairSpec("a", "net", "net-50", "d", pre_finetune="net-50-pre")
        >>> b = PairSpec("b", "net", "net-80", "d", schedule=("net-50-pre", "net-80-pre"))
        >>> [(s.before, s.after, s.acc_before_source) for s in plan_steps(b, [a, b])]
        [('net', 'net-50-pre', 'parent'), ('net-50', 'net-80-pre', 'finetuned')]
    """
    candidates = [spec, *(p for p in pairs if p is not spec)]
    if spec.schedule:
        total = len(spec.schedule)
        steps = []
        for k, checkpoint in enumerate(spec.schedule, start=1):
            if k == 1:
                before, source = spec.parent, "parent"
            elif spec.schedule_finetuned:
                before, source = spec.schedule_finetuned[k - 2], "finetuned"
            else:
                tuned = finetuned_after(spec.schedule[k - 2], candidates)
                before, source = (tuned, "finetuned") if tuned else (spec.parent, "parent-fallback")
            steps.append(Step(k, total, before, checkpoint, "schedule", source))  # type: ignore[arg-type]
        return steps
    if spec.pre_finetune:
        return [Step(1, 1, spec.parent, spec.pre_finetune, "checkpoint")]
    return [Step(1, 1, spec.parent, None, "mask")]


# --------------------------------------------------------------------------- masks

def _channel_layers(module: nn.Module) -> dict[str, nn.Module]:
    """The prunable layers (:func:`prunecheck.nn.layers.prunable_layers`) by module path, shared ones once."""
    from prunecheck.nn.layers import prunable_layers

    return prunable_layers(module)


def channel_mask(module: nn.Module) -> dict[str, torch.Tensor]:
    """Which output channels of each Conv/Linear layer are kept (not all-zero).

    Args:
        module: A (structurally pruned) network; Python ``nn.Module``.

    Returns:
        ``{"<layer path>": keep}`` with ``keep`` bool [out_channels], False where
        the channel's weight slice (``weight[c]``) is exactly zero.

    Example:
        >>> conv = nn.Conv2d(1, 3, 1)
        >>> with torch.no_grad():
        ...     conv.weight[1] = 0
        >>> channel_mask(nn.Sequential(conv))["0"].tolist()
        [True, False, True]
    """
    if isinstance(module, torch.jit.ScriptModule):
        raise ModelError(
            "mask_mode 'channels': expected a Python nn.Module, found a TorchScript module; "
            "use mask_mode 'unstructured' or a state_dict model"
        )
    return {
        name: (layer.weight.detach().flatten(1) != 0).any(dim=1).cpu()
        for name, layer in _channel_layers(module).items()
    }


def apply_channel_mask(module: nn.Module, keep: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``module`` with the dropped output channels removed (zeroed).

    For every dropped channel ``c`` of layer ``L``: ``L.weight[c]`` and
    ``L.bias[c]`` become 0, and so do ``weight[c]`` and ``bias[c]`` of the
    BatchNorm that directly follows ``L`` (if any, and if affine).

    Args:
        module: The network (not modified).
        keep: ``{"<layer path>": bool [out_channels]}`` as :func:`channel_mask` returns.

    Returns:
        The masked copy, in ``module``'s train/eval mode.

    Raises:
        ModelError: ``keep`` names a layer ``module`` lacks, or a channel count differs.
    """
    from prunecheck.nn.layers import conv_bn_pairs

    result = copy.deepcopy(module)
    layers = _channel_layers(result)
    unknown = [name for name in keep if name not in layers]
    if unknown:
        raise ModelError(
            f"channel mask names layers the parent does not have: {unknown[:5]}; "
            f"its Conv/Linear layers are {list(layers)[:10]}"
        )
    for name, k in keep.items():
        out_channels = layers[name].weight.shape[0]
        if tuple(k.shape) != (out_channels,):
            raise ModelError(
                f"channel mask for '{name}': expected {out_channels} output channels (parent), "
                f"found {tuple(k.shape)[0] if k.ndim else k.shape}; channel masks need the same "
                "architecture (zeroed channels, not physically removed ones)"
            )
    pairs = conv_bn_pairs(result)
    with torch.no_grad():
        for name, k in keep.items():
            drop = ~k.to(torch.bool)
            if not bool(drop.any()):
                continue
            layer = layers[name]
            targets = [layer.weight, layer.bias]
            if name in pairs:
                bn = pairs[name][1]
                targets += [bn.weight, bn.bias]
            for tensor in targets:
                if isinstance(tensor, torch.Tensor):
                    tensor[drop.to(tensor.device)] = 0
    return result


def masked_parent(parent: nn.Module, pruned: nn.Module, mode: str = "unstructured") -> nn.Module:
    """A copy of ``parent`` with ``pruned``'s zeros applied (before any fine-tuning).

    Args:
        parent: The unpruned network (not modified).
        pruned: The pruned network of the same architecture.
        mode: ``"unstructured"`` (exact zeros of Conv/Linear weights) or
            ``"channels"`` (all-zero output channels, with bias and BatchNorm).

    Returns:
        The masked parent.

    Raises:
        ModelError: Unknown mode, or the architectures differ.
    """
    if mode == "unstructured":
        return apply_mask(parent, zero_mask(pruned))
    if mode == "channels":
        return apply_channel_mask(parent, channel_mask(pruned))
    raise ModelError(f"mask_mode: expected one of {', '.join(MASK_MODES)}, found {mode!r}")


def masked_parent_model(parent: LoadedModel, pruned: LoadedModel, mode: str = "unstructured") -> LoadedModel:
    """:func:`masked_parent` on loaded models, wrapped as an in-memory model.

    Its name is ``"<parent>*mask(<pruned>)"``; its fingerprint comes from the
    masked weights, so its predictions are cached like any model's.

    Raises:
        ModelError: Either model is an ensemble, or the masks do not fit.
    """
    for model in (parent, pruned):
        if model.is_ensemble or model.module is None:
            raise ModelError(
                f"instability from the zero mask needs single models, found ensemble '{model.name}'; "
                "give the pair a pre_finetune checkpoint instead"
            )
    problem = mask_transfer_problem(parent, pruned)  # e.g. structurally pruned: fail closed with what to configure
    if problem is not None:
        raise ModelError(f"one-shot zero mask of '{pruned.name}' on '{parent.name}' impossible: {problem}")
    try:
        module = masked_parent(parent.module, pruned.module, mode)
    except ModelError as exc:
        raise ModelError(f"applying the zero mask of '{pruned.name}' to '{parent.name}': {exc}") from exc
    name = f"{parent.name}*mask({pruned.name})"
    spec = dataclasses.replace(parent.spec, name=name)
    return model_from_module(name, module, spec)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class StepAccuracy:
    """The accuracies around one :class:`Step`, as the session measured them.

    Attributes:
        step: The step.
        after_name: Name of the model behind ``acc_after`` (the masked parent's
            generated name for ``kind == "mask"``).
        acc_before: Top-1 accuracy before the step, in [0, 1].
        acc_after: Top-1 accuracy right after it, before fine-tuning, in [0, 1].
    """

    step: Step
    after_name: str
    acc_before: float
    acc_after: float


@dataclass(frozen=True)
class StepOutcome(StepAccuracy):
    """A :class:`StepAccuracy` scored: ``instability = (acc_before - acc_after) / acc_before``;
    for a ``"mask"`` step this is the one-shot mask damage, not a per-step instability."""

    instability: float

    def to_dict(self) -> dict:
        return {
            **dataclasses.asdict(self.step),
            "quantity": quantity(self.step)[0],
            "after": self.after_name,
            "acc_before": self.acc_before,
            "acc_after": self.acc_after,
            "instability": self.instability,
        }


def score_steps(accuracies: Sequence[StepAccuracy]) -> list[StepOutcome]:
    """The instability of every step from its accuracies (:func:`prunecheck.metrics.instability`).

    Raises:
        ValueError: an ``acc_before`` of 0 (instability undefined) or a value outside [0, 1].

    Example:
        >>> (outcome,) = score_steps([StepAccuracy(Step(1, 1, "a", "b", "checkpoint"), "b", 0.8, 0.6)])
        >>> round(outcome.instability, 6)
        0.25
    """
    from prunecheck import metrics

    return [
        StepOutcome(a.step, a.after_name, a.acc_before, a.acc_after, metrics.instability(a.acc_before, a.acc_after))
        for a in accuracies
    ]


# --------------------------------------------------------------------------- gates

#: The two quantities this module gates: (metric name, threshold key) per step kind.
PER_STEP = ("pruning instability", "max_instability")
MASK_DAMAGE = ("one-shot mask damage", "max_mask_damage")


def quantity(step: Step) -> tuple[str, str]:
    """(metric name, threshold key): one-shot mask damage for ``kind == "mask"``, else per-step instability."""
    return MASK_DAMAGE if step.kind == "mask" else PER_STEP


def step_label(outcome: StepOutcome, spec: PairSpec) -> str:
    """The gate's metric label, e.g. ``instability step 2/3: fine-tuned 'a' (...) -> 'b' before fine-tuning``."""
    step = outcome.step
    if step.kind == "mask":
        return (f"one-shot mask damage: parent with the final {spec.mask_mode} zero mask of '{spec.pruned}' "
                "(no pruning step known; not per-step instability)")
    where = f"step {step.index}/{step.total}: " if step.total > 1 else ""
    if step.acc_before_source == "finetuned":
        start = f"fine-tuned '{step.before}' (accuracy {outcome.acc_before:.4f})"
    elif step.acc_before_source == "parent-fallback":
        start = f"parent '{step.before}' (no pair names the fine-tuned model of step {step.index - 1})"
    else:
        start = f"parent '{step.before}'"
    return f"instability {where}{start} -> '{outcome.after_name}' before fine-tuning"


def step_results(outcomes: Sequence[StepOutcome], spec: PairSpec, options: Mapping[str, float], *, name: str):
    """One :class:`~prunecheck.gates.decide.GateResult` per step, each against its quantity's threshold.

    Args:
        outcomes: From :func:`score_steps`.
        spec: The pair.
        options: ``[gates.instability]`` (``max_instability``, ``max_mask_damage``).
        name: The gate name.
    """
    results = []
    for outcome in outcomes:
        _, key = quantity(outcome.step)
        results.append(decide(
            name=name, metric=step_label(outcome, spec), value=outcome.instability, threshold=options[key],
            threshold_name=key, direction="max", parent=outcome.acc_before, pruned=outcome.acc_after,
            subject=spec.name, details={**outcome.to_dict(), "quantity": quantity(outcome.step)[0]},
        ))
    return results


def failure_threshold(spec: PairSpec, options: Mapping[str, float]) -> tuple[str, str, float]:
    """(metric, key, threshold) a failed computation is reported under, by the pair's step kind."""
    metric, key = MASK_DAMAGE if not (spec.schedule or spec.pre_finetune) else PER_STEP
    return metric, key, options[key]


def has_steps(spec: PairSpec, settings) -> bool:
    """Whether the instability gate applies: a schedule, a pre-fine-tune checkpoint, or a single
    pruned model whose zero mask can stand in (an ensemble has no single mask)."""
    return bool(spec.pre_finetune or spec.schedule or not settings.models[spec.pruned].members)


def pruning_instability(
    accuracies: Sequence[StepAccuracy] | Unavailable, spec: PairSpec, options: Mapping[str, float], *,
    name: str = "instability",
) -> Outcome:
    """Gate every step of a pair and report the whole series.

    Args:
        accuracies: The pair's :class:`StepAccuracy` list (``Pair.step_accuracies``, from
            :func:`prunecheck.session.stability.step_accuracies`), or why it could not be
            measured: a step that cannot be measured (a mask that does not fit, NaN
            outputs) fails the gate with the reason.
        spec: The pair.
        options: ``[gates.instability]`` (``max_instability``, ``max_mask_damage``).
        name: The gate name and report section.

    Returns:
        One result per step (:func:`step_results`) and the report entry: parent, pruned,
        mask mode, the steps' source, both thresholds and every step.
    """
    metric, key, threshold = failure_threshold(spec, options)

    def build() -> Outcome:
        outcomes = score_steps(available(accuracies))
        record = {
            "parent": spec.parent,
            "pruned": spec.pruned,
            "mask_mode": spec.mask_mode,
            "source": outcomes[0].step.kind,
            "max_instability": options["max_instability"],
            "max_mask_damage": options["max_mask_damage"],
            "steps": [outcome.to_dict() for outcome in outcomes],
        }
        return Outcome(tuple(step_results(outcomes, spec, options, name=name)), ((name, spec.name, record),))

    return fail_closed_outcome(build, name=name, metric=metric, threshold=threshold, threshold_name=key,
                               subject=spec.name)
