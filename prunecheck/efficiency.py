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

Compressed size: the state dict is serialised with ``torch.save`` and deflated
with zlib at level 6, the default of zip and gzip (what zipping a checkpoint
achieves): exact zeros left by pruning compress, dense float weights barely do.
Level 6 rather than 9: on a ResNet-18 state dict, 50 % magnitude-pruned, level 9
took 8x the time of level 6 for a compression ratio only 0.8 % higher
(``benchmarks/bench_zlib_levels.py``; docs/reports.md). The facts are cached by
weight fingerprint (``prunecheck.workspace``), so a warm run compresses nothing.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode  # the base FlopCounterMode itself uses
from torch.utils.flop_counter import FlopCounterMode

from prunecheck.models import LoadedModel, prunable_weights

__all__ = ["EfficiencyFacts", "efficiency_facts", "compression_ratio", "ZLIB_LEVEL"]

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
        raw_bytes: Size of the ``torch.save``-serialised state dict.
        zipped_bytes: Size of that after zlib deflate at level :data:`ZLIB_LEVEL`.
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

    @classmethod
    def sum(cls, parts: Sequence["EfficiencyFacts"]) -> "EfficiencyFacts":
        """Facts of an ensemble: every count summed, ``prune_ratio`` recomputed from the sums."""
        if not parts:
            raise ValueError("EfficiencyFacts.sum: expected at least one member's facts, found none")
        counts = {
            f.name: sum(getattr(p, f.name) for p in parts) for f in fields(cls) if f.name != "prune_ratio"
        }
        prunable = counts["prunable_parameters"]
        ratio = 1.0 - counts["prunable_nonzero"] / prunable if prunable else 0.0
        return cls(prune_ratio=ratio, **counts)

    @property
    def flops_reduction(self) -> float:
        """``1 - effective_flops / flops`` (0 when nothing is counted)."""
        return 1.0 - self.effective_flops / self.flops if self.flops else 0.0


def _storage_key(t: torch.Tensor) -> tuple[str, int] | None:
    try:
        return (str(t.device), t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):
        return None


class _DensityWeightedFlops(TorchDispatchMode):
    """Entered inside a ``FlopCounterMode``: records how many of each op's FLOPs
    fall away because the op's weight operand is sparse.

    Each op is run through the modes below (the FLOP counter counts it); the
    counter's increase is that op's FLOPs. If an operand shares storage with a
    prunable weight (``weight`` itself, or a view such as ``weight.t()``), the
    op's FLOPs times ``1 - density`` are recorded as saved.
    """

    def __init__(self, counter: FlopCounterMode, densities: dict[tuple[str, int], float]) -> None:
        super().__init__()
        self.counter = counter
        self.densities = densities
        self.saved = 0.0

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
                self.saved += delta * (1.0 - density)
        return out


def _flops(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, float]:
    weights = prunable_weights(module)
    densities: dict[tuple[str, int], float] = {}
    for w in weights.values():
        key = _storage_key(w)
        if key is not None and w.numel():
            densities[key] = float(torch.count_nonzero(w.detach())) / w.numel()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = torch.zeros((1, *input_shape), device=device)
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
    return total, total - weighted.saved


def _sizes(module: nn.Module) -> tuple[int, int]:
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in module.state_dict().items()}
    torch.save(state, buffer)
    raw = buffer.getvalue()
    return len(raw), len(zlib.compress(raw, ZLIB_LEVEL))


def _single_facts(module: nn.Module, input_shape: tuple[int, ...]) -> EfficiencyFacts:
    params = [p.detach() for p in module.parameters()]
    weights = prunable_weights(module)
    prunable = sum(w.numel() for w in weights.values())
    prunable_nonzero = sum(int(torch.count_nonzero(w.detach())) for w in weights.values())
    flops, effective = _flops(module, input_shape)
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
    )


def efficiency_facts(model: nn.Module | LoadedModel, input_shape: tuple[int, ...]) -> EfficiencyFacts:
    """Measure a model's size, sparsity, FLOPs and compressed size.

    Args:
        model: A module, or a :class:`~prunecheck.models.LoadedModel` (an
            ensemble's facts are summed over its members).
        input_shape: (C, H, W) of one input; FLOPs are for a batch of 1.

    Returns:
        The facts. Example: a ``Linear(4, 3)`` alone has 15 parameters and
        2·4·3 = 24 FLOPs; with half its weight entries zero its effective FLOPs
        are 12.
    """
    modules = model.networks() if isinstance(model, LoadedModel) else (model,)
    if not modules:
        raise ValueError("efficiency_facts: expected a module or a model with members, found neither")
    parts = [_single_facts(m, tuple(input_shape)) for m in modules]
    return parts[0] if len(parts) == 1 else EfficiencyFacts.sum(parts)


def compression_ratio(parent: EfficiencyFacts, pruned: EfficiencyFacts) -> float:
    """How many times smaller the pruned model's zipped checkpoint is.

    ``parent.zipped_bytes / pruned.zipped_bytes``: 1.0 for no gain, 2.0 when
    the pruned model's deflated state dict is half the size of the parent's
    (seed 001 reports model size this way).
    """
    if pruned.zipped_bytes <= 0:
        raise ValueError(f"compression_ratio: expected pruned zipped_bytes > 0, found {pruned.zipped_bytes}")
    return parent.zipped_bytes / pruned.zipped_bytes
