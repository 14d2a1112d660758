"""Layer predicates: which layers are prunable, which are dropout, which BatchNorm follows which conv.

:func:`is_prunable` is the one definition of a prunable layer, in two sizes:

- **pruned** (default): the ``Conv1d/2d/3d`` (depthwise and grouped included) and
  ``Linear`` modules of a Python ``nn.Module``: what prunecheck's pruning methods and
  channel masks act on. Transposed convolutions are left out (their ``weight[c]`` is an
  *input* channel, so a filter method would cut the wrong axis) and so are TorchScript
  modules (``torch.nn.utils.prune`` hooks cannot be attached to them). BatchNorm,
  embeddings and the rest are never prunable: their weights are scales, not connections.
- **measured** (``measured=True``): also ``ConvTranspose*d`` and scripted Conv/Linear
  modules (recognised by their original class name): every weight whose zeros a pruning
  tool may have produced, so sparsity, zero masks and efficiency facts
  (:func:`prunecheck.nn.models.prunable_weights`) count them.

- Unstructured methods consider the weight of every prunable layer, the final
  classifier included.
- Structured (filter) methods consider the ``Conv*d`` layers only, and never the
  final classifier: the last prunable layer in registration order, when it is a
  convolution (a 1x1 conv head), is left out, since zeroing one of its output
  filters deletes a class.
- ``exclude`` names modules (``"features.0"``, ``"layer1"``); a name excludes
  that module and every module under it.

BatchNorm pairing (:func:`conv_bn_pairs`) traces the model with ``torch.fx``
and pairs a ``BatchNorm*d`` with the convolution whose output is its only input
(and which feeds nothing else). When the model cannot be traced (data-dependent
control flow), it falls back to registration order: a BatchNorm registered
directly after a convolution with ``out_channels == num_features``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn

__all__ = [
    "is_prunable",
    "is_dropout",
    "prunable_layers",
    "filter_layers",
    "conv_bn_pairs",
    "iter_inputs",
    "check_module",
]

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Class names of the measured prunable layers, for TorchScript modules (which lose their Python class).
_MEASURED_NAMES = frozenset(
    {"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear"}
)
_DROPOUT_NAMES = frozenset(
    {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}
)


def _scripted_as(module: nn.Module, names: frozenset[str]) -> bool:
    """A TorchScript module compiled from a class named in ``names``."""
    return isinstance(module, torch.jit.ScriptModule) and getattr(module, "original_name", "") in names


def is_prunable(module: nn.Module, *, measured: bool = False) -> bool:
    """Whether ``module``'s own ``weight`` is a prunable weight (see the module docstring).

    Args:
        module: one module (its children are not looked at).
        measured: False: a layer the pruning methods prune (Python ``Conv1d/2d/3d``,
            ``Linear``). True: a layer whose zeros are counted (also ``ConvTranspose*d``
            and scripted Conv/Linear).

    Example:
        >>> is_prunable(nn.Conv2d(8, 8, 3, groups=8)), is_prunable(nn.BatchNorm2d(8))
        (True, False)
        >>> is_prunable(nn.ConvTranspose2d(8, 4, 2)), is_prunable(nn.ConvTranspose2d(8, 4, 2), measured=True)
        (False, True)
    """
    if not measured:
        return isinstance(module, (*_CONV_TYPES, nn.Linear))
    return isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) or _scripted_as(module, _MEASURED_NAMES)


def is_dropout(module: nn.Module) -> bool:
    """A dropout module (``nn.Dropout*``, ``AlphaDropout``, ...), Python or TorchScript."""
    return isinstance(module, nn.modules.dropout._DropoutNd) or _scripted_as(module, _DROPOUT_NAMES)


def check_module(model: Any, what: str = "model") -> nn.Module:
    """Reject anything the pruning hooks cannot work on.

    Raises:
        ValueError: ``model`` is not an ``nn.Module`` or is a TorchScript module.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what}: expected a torch.nn.Module, found {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError(
            f"{what}: expected a Python torch.nn.Module, found a TorchScript module; "
            "prune the Python model (format 'state_dict') and script it afterwards"
        )
    return model


def _excluded(name: str, exclude: Sequence[str]) -> bool:
    return any(name == ex or name.startswith(ex + ".") for ex in exclude)


def _check_exclude(model: nn.Module, exclude: Sequence[str]) -> tuple[str, ...]:
    if isinstance(exclude, str):
        exclude = (exclude,)
    names = {name for name, _ in model.named_modules()}
    unknown = [ex for ex in exclude if ex not in names]
    if unknown:
        shown = sorted(n for n in names if n)[:12]
        raise ValueError(
            f"exclude: expected names of the model's modules, found unknown {unknown}; "
            f"modules include {shown}"
        )
    return tuple(exclude)


def prunable_layers(model: nn.Module, exclude: Sequence[str] = ()) -> dict[str, nn.Module]:
    """The layers :func:`is_prunable` names (pruned set), whose weights unstructured methods may prune.

    Args:
        model: The network.
        exclude: Module names to leave alone (with everything under them).

    Returns:
        ``{module name: module}`` in registration order; shared modules once.

    Raises:
        ValueError: ``exclude`` names a module the model does not have.
    """
    exclude = _check_exclude(model, exclude)
    out: dict[str, nn.Module] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        if is_prunable(module) and id(module) not in seen:
            seen.add(id(module))
            if not _excluded(name, exclude):
                out[name] = module
    return out


def filter_layers(model: nn.Module, exclude: Sequence[str] = ()) -> dict[str, nn.Module]:
    """Convolutions whose output filters structured methods may prune.

    The final classifier (the last Conv/Linear in registration order) is
    never included, nor are ``Linear`` layers.

    Returns:
        ``{module name: conv module}`` in registration order.
    """
    exclude = _check_exclude(model, exclude)
    everything = prunable_layers(model)
    last = next(reversed(everything)) if everything else None
    return {
        name: module
        for name, module in everything.items()
        if isinstance(module, _CONV_TYPES) and name != last and not _excluded(name, exclude)
    }


def conv_bn_pairs(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """The BatchNorm that directly follows each convolution.

    Returns:
        ``{conv name: (bn name, bn module)}`` for convolutions followed by a
        BatchNorm with one feature per output channel.
    """
    modules = dict(model.named_modules())
    try:
        import torch.fx

        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means: use the fallback
        return _pairs_by_order(model)
    pairs: dict[str, tuple[str, nn.Module]] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BN_TYPES):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module":
            continue
        conv = modules.get(source.target)
        bn = modules[node.target]
        if (
            isinstance(conv, _CONV_TYPES)
            and len(source.users) == 1
            and conv.out_channels == bn.num_features
            and source.target not in pairs
        ):
            pairs[str(source.target)] = (str(node.target), bn)
    return pairs


def _pairs_by_order(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    pairs: dict[str, tuple[str, nn.Module]] = {}
    previous: tuple[str, nn.Module] | None = None
    for name, module in model.named_modules():
        if len(list(module.children())) > 0:
            continue  # containers do not break a conv -> bn sequence
        if (
            isinstance(module, _BN_TYPES)
            and previous is not None
            and isinstance(previous[1], _CONV_TYPES)
            and previous[1].out_channels == module.num_features
        ):
            pairs[previous[0]] = (name, module)
        previous = (name, module)
    return pairs


def iter_inputs(batches: Iterable[Any], what: str = "batches") -> Iterator[torch.Tensor]:
    """Input tensors from an iterable of tensors, ``(x, y)`` tuples or a DataLoader.

    Raises:
        ValueError: An element is neither a tensor nor a tuple/list starting
            with one, or there is no element at all.
    """
    if isinstance(batches, torch.Tensor):
        raise ValueError(
            f"{what}: expected an iterable of input batches (a list of tensors [B, C, H, W], "
            "or a DataLoader), found a single tensor; wrap it in a list"
        )
    count = 0
    for i, item in enumerate(batches):
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        if not isinstance(x, torch.Tensor):
            raise ValueError(
                f"{what}[{i}]: expected a tensor or an (inputs, labels) pair, "
                f"found {type(item).__name__}"
            )
        count += 1
        yield x
    if count == 0:
        raise ValueError(f"{what}: expected at least one input batch, found none")
