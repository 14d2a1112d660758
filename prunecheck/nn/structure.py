"""What a structural pruner could physically remove from a (masked) network.

A filter whose weights are zero leaves more behind than its own zeros: its
output channel is zero, so the BatchNorm channel after it and the input slice
of every layer that reads it compute nothing either. A structural pruner such
as Torch-Pruning removes all of them at once. :func:`structural_keep` finds
them by tracing the network with ``torch.fx`` and propagating two facts per
activation channel (dimension 1 of every activation):

- **zero** (forward): the channel is exactly 0 for every input. A conv/linear
  output channel is zero when every weight slice that reads a non-zero input
  channel is zero and its bias is 0 (or absent); a BatchNorm channel when
  gamma and beta are 0, or when its input is zero and ``beta - gamma * mean /
  sqrt(var + eps)`` is 0; ReLU-like activations, pooling, dropout, copies and
  reshapes keep zeros; a sum is zero where both operands are; a concatenation
  and a flatten map channels to their new positions.
- **unused** (backward): nothing downstream reads the channel. A conv/linear
  input channel is unused when every weight slice that reads it is zero or
  belongs to a dead output channel; a BatchNorm input channel when its output
  is unused or gamma is 0; element-wise ops, sums, concatenations and flattens
  pass "unused" back to their operands.

A channel is **dead** when it is zero or unused. A weight entry ``W[o, i, ...]``
of a ``Conv*d`` / ``Linear`` layer is *removable* when its output channel ``o``
or the input channel it reads is dead; what is left is exactly the (smaller)
weight of the physically pruned layer, so the kept entries also give that
network's FLOPs. Any op not listed above is treated conservatively (its output
channels are never zero, all its input channels are used), so a figure is only
ever an under-count: dependencies are followed where they can be proven.

When the network cannot be traced (data-dependent control flow, TorchScript),
each layer is analysed alone: only its own all-zero filters and all-zero input
slices count as removable.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

__all__ = ["StructuralKeep", "structural_keep", "graph_weights", "CONV_OPS", "LINEAR_OPS"]

#: aten op names (``aten.<name>.<overload>``) of convolutions and linear layers in exported graphs.
CONV_OPS = frozenset({"conv1d", "conv2d", "conv3d", "convolution"})
LINEAR_OPS = frozenset({"linear"})

_CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# f(0) = 0 element-wise, or channel-wise pooling / copies: zeros stay zeros, channels keep their index.
_ZERO_KEEPING_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Tanh, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Hardtanh, nn.Mish,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
_ZERO_KEEPING_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, F.gelu, F.silu, F.hardswish, F.leaky_relu, F.hardtanh, F.mish,
    torch.tanh, F.dropout, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, torch.mean,
}
_ZERO_KEEPING_NAMES = frozenset({
    "relu", "relu_", "relu6", "gelu", "silu", "silu_", "hardswish", "hardswish_", "leaky_relu",
    "leaky_relu_", "hardtanh", "hardtanh_", "mish", "tanh", "dropout", "feature_dropout", "max_pool1d",
    "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "mean", "clone", "contiguous", "alias", "detach",
})
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_RESHAPE_NAMES = frozenset({"flatten", "view", "reshape", "_unsafe_view"})


@dataclass(frozen=True)
class StructuralKeep:
    """Which prunable weight entries a structural pruner would keep.

    Attributes:
        keep: ``{"<layer path>.weight": mask}`` with the names of
            :func:`prunecheck.nn.models.prunable_weights`; each mask is a bool
            tensor of the weight's shape, True where the entry must stay.
        traced: True when the dependencies between layers were followed
            (``torch.fx`` trace); False for the layer-by-layer fallback.
        note: How the masks were derived (the reason for a fallback).
    """

    keep: dict[str, torch.Tensor]
    traced: bool
    note: str

    @property
    def removable(self) -> int:
        """Number of prunable weight entries that could be removed."""
        return sum(int((~k).sum()) for k in self.keep.values())


# --------------------------------------------------------------------------- graph helpers


def _aten_name(target: Any) -> str | None:
    text = str(target)
    return text.split(".")[1] if text.startswith("aten.") and text.count(".") >= 1 else None


def _fetch(gm: nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _tensor_arg(gm: nn.Module, arg: Any) -> torch.Tensor | None:
    """The tensor behind a graph argument that is a parameter/buffer (``get_attr``)."""
    if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
        value = _fetch(gm, str(arg.target))
        return value if isinstance(value, torch.Tensor) else None
    return None


def graph_weights(gm: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    """Weights of the convolutions and linear layers of an aten-level graph (an exported program).

    Returns:
        ``{attribute path: weight}`` for every ``get_attr`` that is the weight
        operand of an ``aten.conv*`` / ``aten.convolution`` / ``aten.linear``
        call, in graph order.
    """
    out: dict[str, torch.Tensor] = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and _aten_name(node.target) in CONV_OPS | LINEAR_OPS:
            if len(node.args) > 1:
                weight = _tensor_arg(gm, node.args[1])
                if weight is not None:
                    out.setdefault(str(node.args[1].target), weight)
    return out


def _shape(node: Any) -> tuple[int, ...] | None:
    if not isinstance(node, torch.fx.Node):
        return None
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


@dataclass
class _Layer:
    """A conv/linear call: its weight, bias and the channel grouping."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    source: torch.fx.Node


@dataclass
class _Norm:
    gamma: np.ndarray
    beta: np.ndarray
    shift_at_zero: np.ndarray  # the channel's output for a zero input
    source: torch.fx.Node


def _reduces_channels(node: torch.fx.Node) -> bool:
    """True for a mean that reduces over the batch or channel dimension (or over everything)."""
    shape = _shape(node.args[0]) if node.args else None
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if shape is None or dims is None:
        return True
    dims = [dims] if isinstance(dims, int) else list(dims)
    return any(not isinstance(d, int) or d % len(shape) in (0, 1) for d in dims)


def _classify(gm: torch.fx.GraphModule, node: torch.fx.Node) -> tuple[str, Any]:
    """(kind, payload) of a node: 'layer', 'norm', 'keep', 'add', 'cat', 'reshape' or 'other'."""
    first = node.args[0] if node.args else None
    if str(node.target) in ("mean", "aten.mean.dim", "aten.mean.default") or node.target is torch.mean:
        if _reduces_channels(node):
            return "other", None
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        if isinstance(module, (*_CONV_MODULES, nn.Linear)) and isinstance(first, torch.fx.Node):
            return "layer", _Layer(module.weight, module.bias, first)
        if isinstance(module, _BN_MODULES) and module.running_mean is not None and isinstance(first, torch.fx.Node):
            return "norm", _norm(module.weight, module.bias, module.running_mean, module.running_var, module.eps, first)
        if isinstance(module, _ZERO_KEEPING_MODULES):
            return "keep", first
        if isinstance(module, nn.Flatten):
            return "reshape", first
        return "other", None
    if node.op == "call_method":
        name = str(node.target)
        if name in _ZERO_KEEPING_NAMES:
            return "keep", first
        if name in _RESHAPE_NAMES:
            return "reshape", first
        if name in ("add", "add_"):
            return "add", node.args[:2]
        return "other", None
    if node.op != "call_function":
        return "other", None
    target, aten = node.target, _aten_name(node.target)
    if target in (F.conv1d, F.conv2d, F.conv3d, F.linear) or aten in CONV_OPS | LINEAR_OPS:
        transposed = aten == "convolution" and len(node.args) > 6 and bool(node.args[6])
        weight = _tensor_arg(gm, node.args[1]) if len(node.args) > 1 else None
        bias_arg = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        bias = _tensor_arg(gm, bias_arg)
        if weight is not None and not transposed and (bias_arg is None or bias is not None):
            return "layer", _Layer(weight, bias, first)
        return "other", None
    if target is F.batch_norm or aten == "batch_norm":
        args = list(node.args) + [None] * 9
        if target is F.batch_norm:
            running_mean, running_var = args[1], args[2]
            gamma, beta = node.kwargs.get("weight", args[3]), node.kwargs.get("bias", args[4])
            training, eps = node.kwargs.get("training", args[5] or False), node.kwargs.get("eps", args[7] or 1e-5)
        else:
            gamma, beta, running_mean, running_var = args[1], args[2], args[3], args[4]
            training, eps = args[5], args[7]
        tensors = [_tensor_arg(gm, a) for a in (gamma, beta, running_mean, running_var)]
        if training is False and tensors[2] is not None and tensors[3] is not None and eps is not None:
            if (gamma is None or tensors[0] is not None) and (beta is None or tensors[1] is not None):
                return "norm", _norm(tensors[0], tensors[1], tensors[2], tensors[3], float(eps), first)
        return "other", None
    if target in _ZERO_KEEPING_FUNCTIONS or aten in _ZERO_KEEPING_NAMES:
        return "keep", first
    if target is torch.flatten or aten in _RESHAPE_NAMES:
        return "reshape", first
    if target in _ADD_FUNCTIONS or aten in ("add", "add_"):
        return "add", node.args[:2]
    if target is torch.cat or aten == "cat":
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        return "cat", (tuple(tensors) if isinstance(tensors, (list, tuple)) else None, dim)
    return "other", None


def _norm(gamma, beta, mean, var, eps: float, source) -> _Norm:
    mean64 = mean.detach().double().cpu().numpy()
    var64 = var.detach().double().cpu().numpy()
    g = gamma.detach().double().cpu().numpy() if gamma is not None else np.ones_like(mean64)
    b = beta.detach().double().cpu().numpy() if beta is not None else np.zeros_like(mean64)
    return _Norm(g, b, b - g * mean64 / np.sqrt(var64 + eps), source)


# --------------------------------------------------------------------------- analysis


class _Analysis:
    """Zero (forward) and unused (backward) channels of every activation of a traced graph."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.nodes = list(gm.graph.nodes)
        self.kinds = {n: _classify(gm, n) for n in self.nodes}
        self.zero: dict[torch.fx.Node, np.ndarray] = {}
        self.unused: dict[torch.fx.Node, np.ndarray] = {}

    def channels(self, node: Any) -> int | None:
        shape = _shape(node)
        return shape[1] if shape is not None and len(shape) >= 2 else None

    def zeros_of(self, node: Any) -> np.ndarray | None:
        return self.zero.get(node) if isinstance(node, torch.fx.Node) else None

    def dead(self, node: torch.fx.Node) -> np.ndarray:
        return self.zero[node] | self.unused[node]

    # -- forward
    def forward(self) -> None:
        for node in self.nodes:
            c = self.channels(node)
            if c is None:
                continue
            kind, payload = self.kinds[node]
            self.zero[node] = self._forward_zero(node, kind, payload, c)

    def _forward_zero(self, node, kind: str, payload: Any, c: int) -> np.ndarray:
        none = np.zeros(c, dtype=bool)
        if kind == "layer":
            z_in = self.zeros_of(payload.source)
            reads = self._reads(payload, z_in)
            if reads is None:
                return none
            live_bias = (
                np.zeros(c, dtype=bool) if payload.bias is None
                else (payload.bias.detach().cpu().numpy() != 0)
            )
            return ~reads.any(axis=1) & ~live_bias
        if kind == "norm":
            z_in = self.zeros_of(payload.source)
            if z_in is None or len(z_in) != c:
                return none
            return ((payload.gamma == 0) & (payload.beta == 0)) | (z_in & (payload.shift_at_zero == 0))
        if kind == "keep":
            z_in = self.zeros_of(payload)
            return z_in.copy() if z_in is not None and len(z_in) == c else none
        if kind == "add":
            operands = [self.zeros_of(a) for a in payload]
            if len(operands) == 2 and all(z is not None and len(z) == c for z in operands) and all(
                _shape(a) == _shape(node) for a in payload
            ):
                return operands[0] & operands[1]
            return none
        if kind == "cat":
            parts = self._cat_parts(node, payload)
            return np.concatenate([self.zero[p] for p in parts]) if parts else none
        if kind == "reshape":
            spread = self._spread(node, payload)
            if spread is None:
                return none
            return np.repeat(self.zero[payload], spread)
        return none

    def _reads(self, layer: _Layer, z_in: np.ndarray | None) -> np.ndarray | None:
        """bool [out, in/groups]: the weight slice is non-zero and reads a non-zero input channel."""
        w = layer.weight.detach().cpu()
        if w.dim() < 2:
            return None
        nonzero = (w.reshape(w.shape[0], w.shape[1], -1) != 0).any(dim=2).numpy()
        if z_in is None:
            return nonzero
        groups = self._groups(layer, len(z_in))
        if groups is None:
            return None
        return nonzero & ~self._input_view(z_in, w.shape[0], w.shape[1], groups)

    @staticmethod
    def _groups(layer: _Layer, in_channels: int) -> int | None:
        """Conv groups, or None when the input is not [N, C_in, ...] of the weight's rank."""
        shape = _shape(layer.source)
        per_group = layer.weight.shape[1]
        if shape is None or len(shape) != layer.weight.dim() or per_group == 0 or in_channels % per_group or layer.weight.shape[0] % (in_channels // per_group):
            return None
        return in_channels // per_group

    @staticmethod
    def _input_view(per_input: np.ndarray, out: int, per_group: int, groups: int) -> np.ndarray:
        """[out, per_group]: the value of the input channel each weight slice reads."""
        group_of_out = np.arange(out) // (out // groups)
        index = group_of_out[:, None] * per_group + np.arange(per_group)[None, :]
        return per_input[index]

    def _cat_parts(self, node, payload) -> list[torch.fx.Node] | None:
        tensors, dim = payload
        shape = _shape(node)
        if tensors is None or shape is None or not isinstance(dim, int) or dim % len(shape) != 1:
            return None
        if not all(isinstance(t, torch.fx.Node) and t in self.zero for t in tensors):
            return None
        return list(tensors) if sum(len(self.zero[t]) for t in tensors) == shape[1] else None

    def _spread(self, node, source: Any) -> int | None:
        """Features per input channel when ``node`` flattens ``source`` [N, C, ...] to [N, C*S]."""
        out, src = _shape(node), _shape(source)
        if out is None or src is None or source not in self.zero or len(src) < 2 or len(out) < 2:
            return None
        if out == src:
            return 1
        spatial = int(np.prod(src[2:])) if len(src) > 2 else 1
        if len(out) == 2 and out[0] == src[0] and out[1] == src[1] * spatial:
            return spatial
        return None

    # -- backward
    def backward(self) -> None:
        for node in self.zero:
            self.unused[node] = np.ones(len(self.zero[node]), dtype=bool)
        for node in reversed(self.nodes):
            kind, payload = self.kinds[node]
            if node in self.zero:
                handled = self._backward_known(node, kind, payload)
            else:
                handled = set()
            for arg in node.all_input_nodes:  # conservative: whatever is not handled is used
                if arg in self.unused and arg not in handled:
                    self.unused[arg][:] = False

    def _use(self, node: torch.fx.Node, ignored: np.ndarray) -> None:
        self.unused[node] &= ignored

    def _backward_known(self, node, kind: str, payload: Any) -> set:
        unused_out = self.unused[node]
        if kind == "layer" and payload.source in self.zero:
            src = payload.source
            w = payload.weight.detach().cpu()
            groups = self._groups(payload, len(self.zero[src]))
            if groups is None:
                return set()
            nonzero = (w.reshape(w.shape[0], w.shape[1], -1) != 0).any(dim=2).numpy()
            live = nonzero & ~self.dead(node)[:, None]  # [out, per_group]
            per_group = w.shape[1]
            used = np.zeros(len(self.zero[src]), dtype=bool)
            out_per_group = w.shape[0] // groups
            for g in range(groups):
                used[g * per_group:(g + 1) * per_group] |= live[g * out_per_group:(g + 1) * out_per_group].any(axis=0)
            self._use(src, ~used)
            return {src}
        if kind == "norm" and payload.source in self.zero and len(self.zero[payload.source]) == len(unused_out):
            self._use(payload.source, unused_out | (payload.gamma == 0))
            return {payload.source}
        if kind == "keep" and payload in self.zero and len(self.zero[payload]) == len(unused_out):
            self._use(payload, unused_out.copy())
            return {payload}
        if kind == "add":
            operands = [a for a in payload if isinstance(a, torch.fx.Node)]
            if len(operands) == 2 and all(a in self.zero and _shape(a) == _shape(node) for a in operands):
                for a in operands:
                    self._use(a, unused_out.copy())
                return set(operands)
            return set()
        if kind == "cat":
            parts = self._cat_parts(node, payload)
            if not parts:
                return set()
            start = 0
            for part in parts:
                size = len(self.zero[part])
                self._use(part, unused_out[start:start + size].copy())
                start += size
            return set(parts)
        if kind == "reshape":
            spread = self._spread(node, payload)
            if spread is None:
                return set()
            self._use(payload, unused_out.reshape(-1, spread).all(axis=1))
            return {payload}
        return set()

    # -- result
    def layer_keeps(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, keep mask) per conv/linear call that could be analysed."""
        out = []
        for node in self.nodes:
            kind, payload = self.kinds[node]
            if kind != "layer" or node not in self.zero or payload.source not in self.zero:
                continue
            w = payload.weight
            src = payload.source
            groups = self._groups(payload, len(self.zero[src]))
            if groups is None:
                continue
            dead_in = self._input_view(self.dead(src), w.shape[0], w.shape[1], groups)
            removable = self.dead(node)[:, None] | dead_in
            keep = torch.from_numpy(~removable).reshape(*removable.shape, *([1] * (w.dim() - 2)))
            out.append((w, keep.expand(w.shape).clone()))
        return out


def _layer_local(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    keep = {}
    for name, w in weights.items():
        w = w.detach().cpu()
        if w.dim() < 2:
            keep[name] = torch.ones(w.shape, dtype=torch.bool)
            continue
        slices = (w.reshape(w.shape[0], w.shape[1], -1) != 0).any(dim=2)
        rows, cols = slices.any(dim=1), slices.any(dim=0)
        mask = rows[:, None] & cols[None, :]
        keep[name] = mask.reshape(*mask.shape, *([1] * (w.dim() - 2))).expand(w.shape).clone()
    return keep


def _storage(t: torch.Tensor) -> tuple[str, int, int]:
    return (str(t.device), t.untyped_storage().data_ptr(), t.storage_offset())


def structural_keep(
    module: nn.Module,
    weights: Mapping[str, torch.Tensor],
    input_shape: tuple[int, ...],
    *,
    trace: Callable[[nn.Module], torch.fx.GraphModule] | None = None,
) -> StructuralKeep:
    """Which entries of ``weights`` stay when every dead channel is removed.

    Args:
        module: The network (a Python module or an exported ``GraphModule``).
        weights: Its prunable weights, ``{name: weight}`` (from
            :func:`prunecheck.nn.models.prunable_weights`).
        input_shape: (C, H, W) of one input; one zero batch of 1 is run to
            learn the activation shapes.
        trace: How to get the graph; default ``torch.fx.symbolic_trace``
            (an existing ``GraphModule`` is used as it is).

    Returns:
        The keep masks. Example: ``Conv2d(3, 4, 3) -> BatchNorm2d(4) ->
        Conv2d(4, 5, 3)`` with filter 0 of the first conv and BN channel 0
        zeroed keeps 3·3·9 of the first weight and 5·3·9 of the second: the 5·1·9
        non-zero entries reading channel 0 are removable too.
    """
    if not weights:
        return StructuralKeep({}, traced=True, note="no prunable layers")
    batch = 1
    try:
        graph_of = getattr(module, "analysis_graph", None)  # e.g. an exported program behind a wrapper
        if callable(graph_of):
            gm, batch = graph_of()
        elif isinstance(module, torch.fx.GraphModule):
            gm = module
        else:
            gm = (trace or torch.fx.symbolic_trace)(module)
        from torch.fx.passes.shape_prop import ShapeProp

        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        training = [(m, m.training) for m in gm.modules()]
        for sub, _ in training:  # set directly: exported graphs refuse eval()
            sub.training = False
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(torch.zeros((batch, *input_shape), device=device))
        finally:
            for sub, mode in training:
                sub.training = mode
    except Exception as exc:  # noqa: BLE001 - any trace failure means: analyse layer by layer
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return StructuralKeep(_layer_local(weights), traced=False, note=f"not traceable ({reason[:160]})")
    analysis = _Analysis(gm)
    analysis.forward()
    analysis.backward()
    by_storage: dict[tuple[str, int, int], torch.Tensor] = {}
    for weight, keep in analysis.layer_keeps():
        key = _storage(weight)
        by_storage[key] = by_storage[key] | keep if key in by_storage else keep  # shared: kept if any use keeps it
    local = _layer_local(weights)
    keep_masks: dict[str, torch.Tensor] = {}
    unresolved = []
    for name, w in weights.items():
        mask = by_storage.get(_storage(w))
        if mask is None or tuple(mask.shape) != tuple(w.shape):
            unresolved.append(name)
            mask = local[name]
        keep_masks[name] = mask
    note = "traced"
    if unresolved:
        note = f"traced; analysed layer by layer: {unresolved[:5]}" + (" ..." if len(unresolved) > 5 else "")
    return StructuralKeep(keep_masks, traced=True, note=note)
