"""Efficiency facts reported with every pair (SPEC 4.6; seeds 001 and 003).

Sizes, sparsity, FLOPs and compressed size of a model, measured, never taken
from the config. For an ensemble every fact is the sum over its members
(``prune_ratio`` is recomputed from the summed counts).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one
forward pass of a zero batch of 1. Its formulas count a multiply-add as
**2 FLOPs** (a matrix product [m, k] @ [k, n] is 2·m·k·n) and count only
matrix products, convolutions and attention: element-wise ops, activations,
normalisation, pooling and bias additions are 0. *Effective* FLOPs are
mask-aware: the FLOPs of every op whose operand is a prunable
(``Conv*d`` / ``Linear``) weight are scaled by that weight's density (its
fraction of non-zero entries); every other op is counted unchanged. This is
the work a sparse kernel that skips zero weights would do.

*Structural* counts are what a structural pruner (e.g. Torch-Pruning) could
physically remove: an entry of a prunable weight is *removable* when the
output channel it writes or the input channel it reads is dead (always zero,
or read by nothing), dependencies followed through BatchNorm, activations,
pooling, residual sums, concatenations and flattens where ``torch.fx`` can
trace the model (:mod:`prunecheck.nn.structure`). *Structural FLOPs* scale each
conv/linear op by the fraction of its weight that is not removable: the FLOPs
of the physically shrunk network, so a masked model and its shrunk twin get
the same figure.

Compressed size: the state dict is serialised with ``torch.save`` and deflated
with zlib at level 6, the default of zip and gzip (what zipping a checkpoint
achieves): exact zeros left by pruning compress, dense float weights barely do.
Level 6 rather than 9: on a ResNet-18 state dict, 50 % magnitude-pruned, level 9
took 8x the time of level 6 for a compression ratio only 0.8 % higher
(``benchmarks/bench_zlib_levels.py``; docs/reports.md). The facts are cached by
weight fingerprint (``prunecheck.session.workspace``), so a warm run compresses nothing.

Pair figures (:func:`pair_ratios`) compare a pruned model with its parent:
``zeros`` counts exact zeros of the pruned model, ``removable`` its structurally
removable entries, and ``structural`` is ``1 - kept / parent`` where *kept* is the
pruned model's prunable entries minus its removable ones: for a physically
smaller model with no dead channels that is ``1 - params(pruned) / params(parent)``
over the prunable layers; for a masked model it equals ``removable``. Families
use ``1 - kept / parent`` where *kept* counts the pruned model's prunable
entries that are neither zero nor removable: the structural ratio for
structured pruning (masked or shrunk alike), the zero ratio for unstructured.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode  # the base FlopCounterMode itself uses
from torch.utils.flop_counter import FlopCounterMode

from prunecheck.nn.models import LoadedModel, prunable_weights
from prunecheck.nn.structure import structural_keep

__all__ = [
    "EfficiencyFacts", "PairRatios", "efficiency_facts", "compression_ratio", "pair_ratios", "ZLIB_LEVEL",
]

#: Deflate level of the compressed-size measurement: zip's and gzip's default (see above).
ZLIB_LEVEL = 6


@dataclass(frozen=True)
class EfficiencyFacts:
    """Measured size and cost of one model (summed over ensemble members).

    Attributes:
        parameters: Number of parameter entries (buffers excluded).
        nonzero_parameters: Parameter entries that are not exactly zero.
        prunable_parameters: Entries of the prunable weights (``Conv*d`` / ``Linear`` ``.weight``).
        prunable_nonzero: Non-zero entries among them.
        prune_ratio: ``1 - prunable_nonzero / prunable_parameters`` (0 without prunable weights).
        flops: FLOPs of one forward pass on one input (multiply-add = 2 FLOPs).
        effective_flops: ``flops`` with each conv/linear op scaled by its weight's density.
        raw_bytes: Size of the ``torch.save``-serialised state dict (of the
            artifact file itself for an ONNX model).
        zipped_bytes: Size of that after zlib deflate at level :data:`ZLIB_LEVEL`.
        removable_parameters: Entries of the prunable weights a structural
            pruner could remove (dead output or input channel); every entry of
            an all-zero filter is among them, and so are the non-zero entries
            that read a dead channel.
        structural_flops: ``flops`` with each conv/linear op scaled by the
            fraction of its weight that is not removable (the shrunk network's FLOPs).
        structure_traced: True when dependencies between layers were followed
            (``torch.fx`` trace), False when each layer was analysed alone (an
            ensemble: True only if every member was traced).
        artifact_bytes: Size of the model's file (weights / archive / ONNX
            file) as loaded; 0 for an in-memory model.
        kept_nonzero: Non-zero prunable entries that are not removable (what
            is left after removing dead channels and skipping zeros); ``None``
            when not measured, read as ``prunable_nonzero``.
    """

    parameters: int
    nonzero_parameters: int
    prunable_parameters: int
    prunable_nonzero: int
    prune_ratio: float
    flops: int
    effective_flops: float
    raw_bytes: int
    zipped_bytes: int
    removable_parameters: int = 0
    structural_flops: float = 0.0
    structure_traced: bool = True
    artifact_bytes: int = 0
    kept_nonzero: int | None = None

    @classmethod
    def sum(cls, parts: Sequence["EfficiencyFacts"]) -> "EfficiencyFacts":
        """Facts of an ensemble: every count summed, ``prune_ratio`` recomputed from the sums,
        ``structure_traced`` only if every member was traced."""
        if not parts:
            raise ValueError("EfficiencyFacts.sum: expected at least one member's facts, found none")
        derived = ("prune_ratio", "structure_traced", "kept_nonzero")
        counts = {f.name: sum(getattr(p, f.name) for p in parts) for f in fields(cls) if f.name not in derived}
        prunable = counts["prunable_parameters"]
        ratio = 1.0 - counts["prunable_nonzero"] / prunable if prunable else 0.0
        return cls(
            prune_ratio=ratio, structure_traced=all(p.structure_traced for p in parts),
            kept_nonzero=sum(p.kept for p in parts), **counts,
        )

    @property
    def flops_reduction(self) -> float:
        """``1 - effective_flops / flops`` (0 when nothing is counted)."""
        return 1.0 - self.effective_flops / self.flops if self.flops else 0.0

    @property
    def kept(self) -> int:
        """Prunable entries that are neither zero nor removable (``kept_nonzero``, else ``prunable_nonzero``)."""
        return self.kept_nonzero if self.kept_nonzero is not None else self.prunable_nonzero

    @property
    def removable_ratio(self) -> float:
        """``removable_parameters / prunable_parameters`` (0 without prunable weights)."""
        return self.removable_parameters / self.prunable_parameters if self.prunable_parameters else 0.0


@dataclass(frozen=True)
class PairRatios:
    """How much of the parent a pruned model removed, counted three ways (see the module docs).

    Attributes:
        zeros: The pruned model's own zero ratio (``EfficiencyFacts.prune_ratio``).
        removable: The pruned model's removable ratio (dead channels followed through the graph).
        structural: ``1 - (prunable - removable)(pruned) / prunable(parent)``.
        physically_smaller: The pruned model has fewer prunable entries than the parent.
        prune_ratio: The ratio families use: ``1 - kept(pruned) / prunable(parent)``,
            the share of the parent's prunable entries that are gone, zero or
            removable. It is ``structural`` for a physically smaller model
            without zeros and for masked structured pruning, ``zeros`` for
            unstructured pruning that leaves no channel dead, and never below either.
        flops_reduction_zeros: ``1 - effective_flops(pruned) / flops(parent)``.
        flops_reduction_structural: ``1 - structural_flops(pruned) / flops(parent)``.
    """

    zeros: float
    removable: float
    structural: float
    physically_smaller: bool
    prune_ratio: float
    flops_reduction_zeros: float
    flops_reduction_structural: float


def pair_ratios(parent: EfficiencyFacts, pruned: EfficiencyFacts) -> PairRatios:
    """Prune ratios and FLOP reductions of ``pruned`` relative to ``parent``.

    Example: a parent with 1,000 prunable entries and a shrunk copy with 250
    (no zeros, no dead channels) give ``structural = 0.75``, ``zeros = 0.0`` and
    a family ratio of 0.75.

    Raises:
        ValueError: The parent has no prunable parameters.
    """
    if parent.prunable_parameters <= 0:
        raise ValueError(
            "pair_ratios: expected a parent with prunable (Conv/Linear) weights, found none; "
            "a prune ratio relative to it is undefined"
        )
    kept = pruned.prunable_parameters - pruned.removable_parameters
    smaller = pruned.prunable_parameters < parent.prunable_parameters
    total = parent.prunable_parameters
    structural = (total - kept) / total  # ratios of counts: 300/1000 is exactly 0.3
    flops = parent.flops
    return PairRatios(
        zeros=pruned.prune_ratio,
        removable=pruned.removable_ratio,
        structural=structural,
        physically_smaller=smaller,
        prune_ratio=(total - pruned.kept) / total,
        flops_reduction_zeros=1.0 - pruned.effective_flops / flops if flops else 0.0,
        flops_reduction_structural=1.0 - pruned.structural_flops / flops if flops else 0.0,
    )


def _storage_key(t: torch.Tensor) -> tuple[str, int] | None:
    try:
        return (str(t.device), t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):
        return None


class _DensityWeightedFlops(TorchDispatchMode):
    """Entered inside a ``FlopCounterMode``: records how many of each op's FLOPs
    fall away because the op's weight operand is sparse or structurally removable.

    Each op is run through the modes below (the FLOP counter counts it); the
    counter's increase is that op's FLOPs. If an operand shares storage with a
    prunable weight (``weight`` itself, or a view such as ``weight.t()``), the
    op's FLOPs times ``1 - density`` are recorded as saved, once for the zero
    density and once for the structural (not removable) density.
    """

    def __init__(self, counter: FlopCounterMode, densities: dict[tuple[str, int], tuple[float, float]]) -> None:
        super().__init__()
        self.counter = counter
        self.densities = densities
        self.saved = 0.0
        self.saved_structural = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch protocol
        kwargs = kwargs or {}
        before = self.counter.get_total_flops()
        out = func(*args, **kwargs)
        delta = self.counter.get_total_flops() - before
        if delta and self.densities:
            density = None
            for arg in list(args) + list(kwargs.values()):
                if isinstance(arg, torch.Tensor):
                    key = _storage_key(arg)
                    if key in self.densities:
                        density = self.densities[key]
                        break
            if density is not None:
                self.saved += delta * (1.0 - density[0])
                self.saved_structural += delta * (1.0 - density[1])
        return out


def _flops(
    module: nn.Module, input_shape: tuple[int, ...], structural: dict[str, torch.Tensor]
) -> tuple[int, float, float]:
    """(FLOPs, zero-density-weighted FLOPs, structurally-kept-weighted FLOPs) of one forward pass."""
    weights = prunable_weights(module)
    densities: dict[tuple[str, int], tuple[float, float]] = {}
    for name, w in weights.items():
        key = _storage_key(w)
        if key is not None and w.numel():
            kept = structural.get(name)
            kept_fraction = float(kept.sum()) / w.numel() if kept is not None else 1.0
            densities[key] = (float(torch.count_nonzero(w.detach())) / w.numel(), kept_fraction)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    batch = getattr(module, "fixed_batch", None) or 1  # a program exported for a fixed batch runs on that many
    x = torch.zeros((batch, *input_shape), device=device)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            with _DensityWeightedFlops(counter, densities) as weighted:
                module(x)
    finally:
        for sub, training in modes:  # restore per module (e.g. MC dropout: only dropout in train)
            sub.training = training
    total = counter.get_total_flops()
    return total // batch, (total - weighted.saved) / batch, (total - weighted.saved_structural) / batch


def _sizes(module: nn.Module) -> tuple[int, int]:
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in module.state_dict().items()}
    torch.save(state, buffer)
    raw = buffer.getvalue()
    return len(raw), len(zlib.compress(raw, ZLIB_LEVEL))


def _single_facts(module: nn.Module, input_shape: tuple[int, ...]) -> EfficiencyFacts:
    artifact = getattr(module, "artifact_facts", None)
    if callable(artifact):  # a deployed artifact (ONNX) counts from its own graph
        return EfficiencyFacts(**artifact(input_shape))
    params = [p.detach() for p in module.parameters()]
    weights = prunable_weights(module)
    prunable = sum(w.numel() for w in weights.values())
    prunable_nonzero = sum(int(torch.count_nonzero(w.detach())) for w in weights.values())
    structure = structural_keep(module, weights, input_shape)
    flops, effective, structural = _flops(module, input_shape, structure.keep)
    raw, zipped = _sizes(module)
    return EfficiencyFacts(
        parameters=sum(p.numel() for p in params),
        nonzero_parameters=sum(int(torch.count_nonzero(p)) for p in params),
        prunable_parameters=prunable,
        prunable_nonzero=prunable_nonzero,
        prune_ratio=1.0 - prunable_nonzero / prunable if prunable else 0.0,
        flops=flops,
        effective_flops=effective,
        raw_bytes=raw,
        zipped_bytes=zipped,
        removable_parameters=structure.removable,
        kept_nonzero=sum(
            int(((w.detach().cpu() != 0) & structure.keep[name]).sum()) for name, w in weights.items()
        ),
        structural_flops=structural,
        structure_traced=structure.traced,
    )


def efficiency_facts(model: nn.Module | LoadedModel, input_shape: tuple[int, ...]) -> EfficiencyFacts:
    """Measure a model's size, sparsity, FLOPs and compressed size.

    Args:
        model: A module, or a :class:`~prunecheck.nn.models.LoadedModel` (an
            ensemble's facts are summed over its members).
        input_shape: (C, H, W) of one input; FLOPs are for a batch of 1.

    Returns:
        The facts. Example: a ``Linear(4, 3)`` alone has 15 parameters and
        2·4·3 = 24 FLOPs; with half its weight entries zero its effective FLOPs
        are 12.
    """
    if isinstance(model, LoadedModel) and model.is_ensemble:
        return EfficiencyFacts.sum([efficiency_facts(member, input_shape) for member in model.members])
    modules = model.networks() if isinstance(model, LoadedModel) else (model,)
    if not modules:
        raise ValueError("efficiency_facts: expected a module or a model with members, found neither")
    facts = _single_facts(modules[0], tuple(input_shape))
    if isinstance(model, LoadedModel) and model.spec.weights is not None and Path(model.spec.weights).is_file():
        facts = replace(facts, artifact_bytes=Path(model.spec.weights).stat().st_size)
    return facts


def compression_ratio(parent: EfficiencyFacts, pruned: EfficiencyFacts) -> float:
    """How many times smaller the pruned model's zipped checkpoint is.

    ``parent.zipped_bytes / pruned.zipped_bytes``: 1.0 for no gain, 2.0 when
    the pruned model's deflated state dict is half the size of the parent's
    (seed 001 reports model size this way).
    """
    if pruned.zipped_bytes <= 0:
        raise ValueError(f"compression_ratio: expected pruned zipped_bytes > 0, found {pruned.zipped_bytes}")
    return parent.zipped_bytes / pruned.zipped_bytes
