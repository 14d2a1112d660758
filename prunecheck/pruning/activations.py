"""Which activation output belongs to each convolution (the feature maps HRank ranks).

HRank (Lin et al. 2020) ranks the feature maps a filter produces *after* its
BatchNorm and activation: the authors' ``rank_generation.py`` hooks the ReLU
modules (``relucfg`` of VGG, ``relu1`` / ``relu2`` of the ResNet blocks, the
second one after the residual add). Conv outputs themselves are almost always
full rank, so ranking them makes every filter tie.

:func:`conv_activations` traces the model with ``torch.fx`` and follows each
convolution's output through at most one BatchNorm and one residual ``add``
(each with the previous node as the only user chain) to an elementwise
activation; :func:`activation_maps` runs batches and hands each conv's
activation output [B, C, H, W] to a callback. Models that cannot be traced
fall back to registration order (conv, optional BN, activation module), the
way :func:`prunecheck.nn.layers.conv_bn_pairs` does.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

__all__ = ["ACTIVATION_MODULES", "conv_activations", "activation_maps"]

#: Elementwise activations HRank may rank after (module types).
ACTIVATION_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Hardswish,
    nn.Mish, nn.Hardtanh,
)
_ACTIVATION_FUNCTIONS = {
    torch.relu, torch.relu_, torch.nn.functional.relu, torch.nn.functional.relu6, torch.nn.functional.leaky_relu,
    torch.nn.functional.elu, torch.nn.functional.gelu, torch.nn.functional.silu, torch.nn.functional.hardswish,
    torch.nn.functional.mish, torch.nn.functional.hardtanh,
}
_ACTIVATION_METHODS = {"relu", "relu_"}
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ADD = {operator.add, operator.iadd, torch.add}


def _is_activation(node: Any, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), ACTIVATION_MODULES)
    if node.op == "call_function":
        return node.target in _ACTIVATION_FUNCTIONS
    return node.op == "call_method" and node.target in _ACTIVATION_METHODS


def _only_user(node: Any) -> Any | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _follow(conv_node: Any, modules: Mapping[str, nn.Module]) -> Any | None:
    """conv -> [BN] -> [add] -> activation, each link the previous node's only user."""
    node = _only_user(conv_node)
    if node is not None and node.op == "call_module" and isinstance(modules.get(node.target), _BN_TYPES):
        node = _only_user(node)
    if node is not None and node.op == "call_function" and node.target in _ADD:
        node = _only_user(node)
    return node if node is not None and _is_activation(node, modules) else None


def conv_activations(model: nn.Module, convs: Iterable[str]) -> dict[str, str]:
    """The activation node (fx) or module (fallback) whose output ranks each conv's filters.

    Args:
        model: The network (Python ``nn.Module``).
        convs: Names of the convolutions to rank.

    Returns:
        ``{conv name: fx node name}`` when the model traces, else ``{conv name:
        activation module name}`` (registration order fallback, prefixed ``"module:"``).

    Raises:
        ValueError: a convolution is not followed by an activation (names the
            layers, and says to exclude them).
    """
    convs = list(convs)
    modules = dict(model.named_modules())
    found: dict[str, str] = {}
    try:
        import torch.fx

        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means: use the fallback
        found = _by_order(model, convs)
    else:
        for node in graph.nodes:
            if node.op == "call_module" and node.target in convs and node.target not in found:
                activation = _follow(node, modules)
                if activation is not None:
                    found[str(node.target)] = activation.name
    missing = [c for c in convs if c not in found]
    if missing:
        raise ValueError(
            f"hrank: expected an activation (ReLU, GELU, ...) after each convolution, directly or after its "
            f"BatchNorm / a residual add, found none after {missing[:5]}; HRank ranks post-activation feature "
            "maps, so exclude these layers (exclude=[...]) or use another method"
        )
    return found


def _by_order(model: nn.Module, convs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    pending: str | None = None
    for name, module in model.named_modules():
        if len(list(module.children())) > 0:
            continue
        if name in convs:
            pending = name
        elif pending is not None and isinstance(module, _BN_TYPES):
            continue
        elif pending is not None and isinstance(module, ACTIVATION_MODULES):
            found[pending] = "module:" + name
            pending = None
        else:
            pending = None
    return found


def activation_maps(
    model: nn.Module, targets: Mapping[str, str], run: Callable[[nn.Module], Any],
    on_output: Callable[[str, torch.Tensor], None],
) -> None:
    """Call ``run(module)`` and hand every target activation's output to ``on_output(conv, out)``.

    With fx targets the traced module is run through an interpreter that records
    those nodes; module targets (fallback) get forward hooks on ``model``.
    """
    if all(t.startswith("module:") for t in targets.values()):
        modules = dict(model.named_modules())
        calls = {conv: 0 for conv in targets}
        forwards = [0]

        def hook_for(conv: str) -> Callable[..., None]:
            def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
                calls[conv] += 1
                on_output(conv, out)
            return hook

        handles = [modules[t[len("module:"):]].register_forward_hook(hook_for(c)) for c, t in targets.items()]
        handles.append(model.register_forward_pre_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1)))
        try:
            run(model)
        finally:
            for h in handles:
                h.remove()
        shared = [c for c, n in calls.items() if n != forwards[0]]
        if shared:  # e.g. one nn.ReLU module applied at several places (torchvision's BasicBlock)
            raise ValueError(
                f"hrank: the model cannot be traced with torch.fx, and the activation modules after {shared[:5]} "
                f"ran {[calls[c] for c in shared[:5]]} times in {forwards[0]} forward passes, so their outputs "
                "cannot be attributed to one convolution; make the model traceable or exclude these layers"
            )
        return
    import torch.fx

    traced = torch.fx.symbolic_trace(model)
    by_node = {node_name: conv for conv, node_name in targets.items()}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if n.name in by_node:
                on_output(by_node[n.name], out)
            return out

    class _Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.traced = traced

        def forward(self, x: torch.Tensor) -> Any:
            return _Recorder(self.traced).run(x)

    run(_Wrapped())
