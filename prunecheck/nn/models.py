"""Loading models from their specs, fingerprinting their weights, and zero masks.

A :class:`LoadedModel` is a module in eval mode on the CPU (the engine moves it
to the evaluation device) plus the :class:`~prunecheck.config.settings.ModelSpec` it
came from and a content fingerprint used in prediction cache keys. An ensemble
is a :class:`LoadedModel` without a module whose ``members`` are the loaded
member models.

Formats (SPEC 8, reliability and security):

- ``state_dict``: the architecture comes from ``spec.factory``
  (``"package.module:callable"``, called with ``spec.kwargs``); the weights
  file is read with ``torch.load(weights_only=True)``, so it can hold only
  tensors and plain containers. A raw state dict and a checkpoint dict with a
  ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` entry are accepted;
  a ``module.`` prefix (``DataParallel``) is removed, and
  ``torch.nn.utils.prune`` leftovers (``weight_orig`` + ``weight_mask``) are
  folded into ``weight = weight_orig * weight_mask``.
  ``state_dict_key`` names where the state dict sits when it is elsewhere, and
  ``strip_prefix`` keeps only the keys under a prefix (Lightning's ``model.``).
  numpy scalars in the checkpoint are allowed through torch's safe-globals
  allowlist, nothing wider (:mod:`prunecheck.nn.formats.checkpoint`).
- ``safetensors``: a ``.safetensors`` state dict, built onto ``spec.factory``.
- ``torch_pruning``: a file written by Torch-Pruning's ``tp.state_dict``, rebuilt
  onto the factory's architecture by Torch-Pruning's own loader
  (:mod:`prunecheck.nn.formats.torch_pruning`).
- ``exported``: a ``torch.export`` program (``.pt2``), checked so that nothing
  pickled or compiled in it runs (:mod:`prunecheck.nn.formats.exported`).
- ``onnx``: an ONNX file run by ONNX Runtime behind an ``nn.Module``
  (:mod:`prunecheck.nn.formats.onnx`).
- ``torchscript``: ``torch.jit.load``.
- ``pickle``: a whole pickled module, read with ``weights_only=False``. That
  runs arbitrary code from the file, so it needs ``trust = true`` in the spec,
  and the file is not even opened without it.

Masks: :func:`zero_mask` reads which prunable weights (``Conv*d`` and
``Linear`` ``.weight``) are exactly zero, :func:`apply_mask` zeroes them in a
copy of another module (e.g. the parent, for the pruning-instability gate).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from prunecheck.config.settings import ModelSpec
from prunecheck.core.errors import ModelError
from prunecheck.nn.formats.checkpoint import CHECKPOINT_KEYS, extract_state_dict, safe_load
from prunecheck.nn.layers import is_dropout, is_prunable
from prunecheck.nn.structure import graph_weights

__all__ = [
    "LoadedModel",
    "load_model",
    "model_from_module",
    "ensemble_from_members",
    "check_output_width",
    "zero_mask",
    "apply_mask",
    "prunable_weights",
    "mask_transfer_problem",
]

_FORMATS = ("state_dict", "safetensors", "torch_pruning", "exported", "onnx", "torchscript", "pickle")
_FINGERPRINT_VERSION = b"prunecheck-model-fingerprint-v1\0"
_MAX_LISTED = 5


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for evaluation.

    Attributes:
        name: The model entry's name (used in messages, ids and reports).
        spec: The spec it was loaded from.
        module: The network, in eval mode, on the CPU; ``None`` for an ensemble.
        members: The loaded ensemble members; empty for a single model.
        fingerprint: sha256 hex over the weights (state dict tensors with their
            names, dtypes and shapes, in sorted key order), the architecture text and
            the spec fields that change outputs (factory, kwargs, format and,
            for ensembles, the averaging and the members' fingerprints). The
            name, paths and ``trust`` are not part of it.
    """

    name: str
    spec: ModelSpec
    module: nn.Module | None
    members: tuple["LoadedModel", ...]
    fingerprint: str

    @property
    def is_ensemble(self) -> bool:
        """True for an ensemble (members, no module of its own)."""
        return bool(self.members)

    @property
    def has_dropout(self) -> bool:
        """True if any dropout module is present (in any member), so MC dropout applies."""
        if self.is_ensemble:
            return any(member.has_dropout for member in self.members)
        return self.module is not None and any(is_dropout(m) for m in self.module.modules())

    def networks(self) -> tuple[nn.Module, ...]:
        """The networks to evaluate: the members' modules, or the model's own one."""
        if self.is_ensemble:
            return tuple(m for member in self.members for m in member.networks())
        return (self.module,) if self.module is not None else ()


# --------------------------------------------------------------------------- loading


def load_model(spec: ModelSpec, catalogue: Mapping[str, ModelSpec] | None = None) -> LoadedModel:
    """Load the model a spec describes.

    Args:
        spec: The model entry.
        catalogue: All model entries by name; needed to resolve an ensemble's
            ``members``.

    Returns:
        The model in eval mode on the CPU, with its fingerprint.

    Raises:
        ModelError: The factory cannot be imported or called, the weights file
            is missing or does not fit the architecture, a pickle is not
            trusted, or an ensemble member is unknown.
    """
    if spec.members:
        return _load_ensemble(spec, catalogue)
    if spec.format == "pickle":
        # Checked before the file is touched: unpickling runs the file's code.
        if not spec.trust:
            raise ModelError(
                f"model '{spec.name}': format 'pickle' runs arbitrary code from "
                f"{spec.weights}; set trust = true for this model only if you trust the file, "
                "or save a state dict and use format 'state_dict'"
            )
        module = _load_pickle(spec)
    elif spec.format == "torchscript":
        module = _load_torchscript(spec)
    elif spec.format == "state_dict":
        state = _read_state_dict(spec)
        module = _build(spec)
        _load_state_dict_into(spec, module, state)
    elif spec.format == "safetensors":
        from prunecheck.nn.formats.checkpoint import read_safetensors

        state = read_safetensors(spec.name, _require_weights(spec))
        state = extract_state_dict(spec.name, spec.weights, state, strip_prefix=spec.strip_prefix)
        module = _build(spec)
        _load_state_dict_into(spec, module, state)
    elif spec.format == "torch_pruning":
        from prunecheck.nn.formats.torch_pruning import load_tp_state_dict

        path = _require_weights(spec)
        module = load_tp_state_dict(spec.name, path, _build(spec))
    elif spec.format == "exported":
        from prunecheck.nn.formats.exported import load_exported

        module = load_exported(spec.name, _require_weights(spec))
    elif spec.format == "onnx":
        from prunecheck.nn.formats.onnx import load_onnx

        module = load_onnx(spec.name, _require_weights(spec))
    else:
        raise ModelError(
            f"model '{spec.name}': expected format {', '.join(repr(f) for f in _FORMATS)}, found {spec.format!r}"
        )
    return model_from_module(spec.name, module, spec)


def model_from_module(name: str, module: nn.Module, spec: ModelSpec | None = None) -> LoadedModel:
    """Wrap an in-memory module (demo zoo, tests) as a :class:`LoadedModel`.

    The module itself is moved to the CPU and put in eval mode (in place);
    the fingerprint is computed from its state dict.

    Args:
        name: The model's name.
        module: The network.
        spec: Its spec; defaults to ``ModelSpec(name=name)``.
    """
    if not isinstance(module, nn.Module):
        raise ModelError(f"model '{name}': expected a torch.nn.Module, found {type(module).__name__}")
    spec = spec if spec is not None else ModelSpec(name=name)
    module = module.cpu().eval()
    return LoadedModel(
        name=name, spec=spec, module=module, members=(), fingerprint=_module_fingerprint(spec, module)
    )


def ensemble_from_members(
    name: str, members: Sequence[LoadedModel], spec: ModelSpec | None = None
) -> LoadedModel:
    """Build an ensemble from loaded members (averaged as ``spec.ensemble_average`` says).

    Args:
        name: The ensemble's name.
        members: Single (non-ensemble) models, at least one.
        spec: Its spec; defaults to one naming the members, averaging probabilities.
    """
    if not members:
        raise ModelError(f"ensemble '{name}': expected at least one member, found none")
    for member in members:
        if member.is_ensemble:
            raise ModelError(
                f"ensemble '{name}': member '{member.name}' is itself an ensemble; "
                "list its members directly instead"
            )
    spec = spec if spec is not None else ModelSpec(name=name, members=tuple(m.name for m in members))
    h = hashlib.sha256(_FINGERPRINT_VERSION)
    h.update(b"ensemble\0")
    h.update(spec.ensemble_average.encode() + b"\0")
    for member in members:
        h.update(member.fingerprint.encode() + b"\0")
    return LoadedModel(name=name, spec=spec, module=None, members=tuple(members), fingerprint=h.hexdigest())


def _load_ensemble(spec: ModelSpec, catalogue: Mapping[str, ModelSpec] | None) -> LoadedModel:
    if spec.factory is not None or spec.weights is not None:
        raise ModelError(
            f"ensemble '{spec.name}': expected only 'members' (the ensemble has no weights of its own), "
            f"found factory={spec.factory!r} weights={str(spec.weights)!r}"
        )
    if catalogue is None:
        raise ModelError(
            f"ensemble '{spec.name}': members {list(spec.members)} cannot be resolved without the "
            "catalogue of model entries"
        )
    loaded = []
    for member_name in spec.members:
        if member_name == spec.name:
            raise ModelError(f"ensemble '{spec.name}': lists itself as a member")
        if member_name not in catalogue:
            raise ModelError(
                f"ensemble '{spec.name}': member '{member_name}' is not a model entry; "
                f"known models: {sorted(catalogue)}"
            )
        member_spec = catalogue[member_name]
        if member_spec.members:
            raise ModelError(
                f"ensemble '{spec.name}': member '{member_name}' is itself an ensemble; "
                "list its members directly instead"
            )
        loaded.append(load_model(member_spec, catalogue))
    return ensemble_from_members(spec.name, loaded, spec)


def _require_weights(spec: ModelSpec) -> Path:
    if spec.weights is None:
        raise ModelError(f"model '{spec.name}': expected a 'weights' file for format '{spec.format}', found none")
    path = Path(spec.weights)
    if not path.is_file():
        raise ModelError(f"model '{spec.name}': weights file not found: {path}")
    return path


def _import_factory(spec: ModelSpec) -> Any:
    target = spec.factory
    if not target:
        raise ModelError(
            f"model '{spec.name}': format 'state_dict' needs a 'factory' (\"package.module:callable\") "
            "to build the architecture, found none"
        )
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise ModelError(
            f"model '{spec.name}': expected factory as \"package.module:callable\", found {target!r}"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"model '{spec.name}': cannot import module '{module_name}' of factory {target!r}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ModelError(
                f"model '{spec.name}': module '{module_name}' has no attribute '{attr_path}' (factory {target!r})"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"model '{spec.name}': factory {target!r} is not callable")
    return obj


def _build(spec: ModelSpec) -> nn.Module:
    factory = _import_factory(spec)
    try:
        module = factory(**dict(spec.kwargs))
    except Exception as exc:  # noqa: BLE001 - user code; re-raised with context
        raise ModelError(
            f"model '{spec.name}': factory {spec.factory!r} failed with kwargs {dict(spec.kwargs)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"model '{spec.name}': factory {spec.factory!r} should return a torch.nn.Module, "
            f"returned {type(module).__name__}"
        )
    return module


def _read_state_dict(spec: ModelSpec) -> dict[str, Any]:
    path = _require_weights(spec)
    try:
        obj = safe_load(path)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        raise ModelError(
            f"model '{spec.name}': cannot read {path} as a state dict with torch.load(weights_only=True): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "A Torch-Pruning file needs format 'torch_pruning'; a torch.export archive format 'exported'; "
            "a TorchScript archive format 'torchscript'; a whole pickled module format 'pickle' and trust = true"
        ) from exc
    return _extract_state_dict(spec, path, obj)


def _extract_state_dict(spec: ModelSpec, path: Path | str, obj: Any) -> dict[str, Any]:
    return extract_state_dict(
        spec.name, path, obj, state_dict_key=spec.state_dict_key, strip_prefix=spec.strip_prefix
    )


def _normalise_state_dict(state: Mapping[str, Any], expected: Sequence[str]) -> dict[str, Any]:
    """Strip a DataParallel prefix and fold ``torch.nn.utils.prune`` leftovers."""
    state = dict(state)
    prefix = "module."
    if (
        state
        and all(k.startswith(prefix) for k in state)
        and not all(k.startswith(prefix) for k in expected)
    ):
        state = {k[len(prefix):]: v for k, v in state.items()}
    folded: dict[str, Any] = {}
    for key, value in state.items():
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue  # consumed with its _orig partner
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            base = key[: -len("_orig")]
            mask = state[base + "_mask"]
            folded[base] = (value * mask.to(value.dtype)).to(value.dtype)
            continue
        folded[key] = value
    return folded


def _load_state_dict_into(spec: ModelSpec, module: nn.Module, state: Mapping[str, Any]) -> None:
    target = module.state_dict()
    state = _normalise_state_dict(state, list(target))
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [
        f"{k} (model {tuple(target[k].shape)}, file {tuple(state[k].shape)})"
        for k in target
        if k in state
        and isinstance(state[k], torch.Tensor)
        and isinstance(target[k], torch.Tensor)
        and tuple(state[k].shape) != tuple(target[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
            if keys:
                more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
                parts.append(f"{label} {keys[:_MAX_LISTED]}{more}")
        raise ModelError(
            f"model '{spec.name}': weights {spec.weights} do not fit the architecture of factory "
            f"{spec.factory!r}: " + "; ".join(parts) + _prefix_hint(unexpected, target)
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"model '{spec.name}': loading {spec.weights} failed: {exc}") from exc


def _prefix_hint(unexpected: Sequence[str], expected: Mapping[str, Any]) -> str:
    """``; set strip_prefix = "model."`` when removing one leading name would make keys fit."""
    counts: dict[str, int] = {}
    for key in unexpected:
        head, dot, rest = key.partition(".")
        if dot and rest in expected:
            counts[head + "."] = counts.get(head + ".", 0) + 1
    if not counts:
        return ""
    prefix = max(counts, key=counts.get)
    return f"; the keys under {prefix!r} fit: set strip_prefix = \"{prefix}\""


def _load_torchscript(spec: ModelSpec) -> nn.Module:
    path = _require_weights(spec)
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"model '{spec.name}': cannot load {path} as TorchScript: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def _load_pickle(spec: ModelSpec) -> nn.Module:
    path = _require_weights(spec)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"model '{spec.name}': cannot unpickle {path}: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(obj, nn.Module):
        return obj
    if spec.factory:  # a trusted pickle holding a (checkpoint) dict: build and load it
        module = _build(spec)
        _load_state_dict_into(spec, module, _extract_state_dict(spec, path, obj))
        return module
    raise ModelError(
        f"model '{spec.name}': expected {path} to hold a pickled torch.nn.Module, found {type(obj).__name__}"
    )


# --------------------------------------------------------------------------- fingerprints


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu()
    if t.is_quantized:
        t = t.int_repr()
    t = t.contiguous().reshape(-1)
    try:
        return t.view(torch.uint8).numpy().tobytes()
    except (RuntimeError, TypeError):
        return t.to(torch.float64).numpy().tobytes()


def _architecture_text(module: nn.Module) -> str:
    """The module's repr, plus the TorchScript code of scripted submodules."""
    parts = [f"{type(module).__module__}.{type(module).__qualname__}", repr(module)]
    if isinstance(module, torch.jit.ScriptModule):
        for sub_name, sub in module.named_modules():
            try:
                parts.append(f"{sub_name}:{sub.code}")
            except (RuntimeError, AttributeError):
                pass
    return "\n".join(parts)


def _module_fingerprint(spec: ModelSpec, module: nn.Module) -> str:
    h = hashlib.sha256(_FINGERPRINT_VERSION)
    fields = {"factory": spec.factory, "kwargs": dict(spec.kwargs), "format": spec.format}
    h.update(json.dumps(fields, sort_keys=True, default=repr).encode() + b"\0")
    h.update(_architecture_text(module).encode() + b"\0")
    state = module.state_dict()
    for key in sorted(state):  # sorted: prune.remove() re-registers weights last
        value = state[key]
        h.update(key.encode() + b"\0")
        if isinstance(value, torch.Tensor):
            h.update(f"{value.dtype}{tuple(value.shape)}".encode() + b"\0")
            h.update(_tensor_bytes(value))
        else:
            h.update(repr(value).encode())
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- checks


def check_output_width(
    model: LoadedModel,
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    dataset: str = "the dataset",
) -> None:
    """Check that the model outputs one logit per dataset class.

    Runs one forward pass on a zero batch of shape [1, *input_shape] (each
    member of an ensemble).

    Args:
        model: The loaded model.
        num_classes: Classes in the dataset.
        input_shape: (C, H, W) of one input.
        dataset: The dataset's name, for the message.

    Raises:
        ModelError: The forward pass fails, or its output is not [1, num_classes].
    """
    if model.is_ensemble:
        for member in model.members:
            check_output_width(member, num_classes, input_shape, dataset=dataset)
        return
    module = model.module
    if module is None:
        raise ModelError(f"model '{model.name}': has neither a module nor ensemble members")
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = torch.zeros((1, *input_shape), device=device)
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:  # noqa: BLE001 - user model code
        raise ModelError(
            f"model '{model.name}': forward pass on an input of shape {tuple(x.shape)} "
            f"(dataset '{dataset}') failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ModelError(
            f"model '{model.name}': expected the forward pass to return a logits tensor [N, {num_classes}], "
            f"found {type(out).__name__}"
        )
    if out.dim() != 2 or out.shape[0] != 1:
        raise ModelError(
            f"model '{model.name}': expected logits of shape [1, {num_classes}] for one input, "
            f"found {tuple(out.shape)}"
        )
    if out.shape[1] != num_classes:
        raise ModelError(
            f"model '{model.name}' outputs {out.shape[1]} classes but dataset '{dataset}' has {num_classes}"
        )


# --------------------------------------------------------------------------- masks


def prunable_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """The weight tensor of every measured prunable layer (:func:`prunecheck.nn.layers.is_prunable`):
    ``Conv*d`` / ``ConvTranspose*d`` / ``Linear``, Python or TorchScript.

    In an exported program (``torch.fx.GraphModule``) these are the weight
    operands of its ``aten.conv*`` / ``aten.linear`` calls, named by attribute path.

    Returns:
        ``{"<layer path>.weight": weight}`` in module order (shared weights once).
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for path, sub in module.named_modules():
        if isinstance(sub, torch.fx.GraphModule):  # an exported program: weights are graph operands
            for name, weight in graph_weights(sub).items():
                if id(weight) not in seen:
                    seen.add(id(weight))
                    out[f"{path}.{name}" if path else name] = weight
            continue
        if not is_prunable(sub, measured=True):
            continue
        weight = getattr(sub, "weight", None)
        if not isinstance(weight, torch.Tensor) or id(weight) in seen:
            continue
        seen.add(id(weight))
        out[f"{path}.weight" if path else "weight"] = weight
    return out


def zero_mask(module: nn.Module) -> dict[str, torch.Tensor]:
    """The keep-mask of a (pruned) module, read from its exact zeros.

    Args:
        module: Any module.

    Returns:
        ``{"<layer path>.weight": mask}`` for every prunable weight; each mask
        is a bool tensor of the weight's shape, True where the weight is kept
        (non-zero).
    """
    return {name: (w.detach() != 0).cpu() for name, w in prunable_weights(module).items()}


def apply_mask(module: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``module`` with the weights the mask drops set to zero.

    Layers not named in ``mask`` are left as they are.

    Args:
        module: The network to mask (it is not modified).
        mask: ``{"<layer path>.weight": keep}`` as :func:`zero_mask` returns;
            each ``keep`` has the weight's shape (bool, or 0/1 values).

    Returns:
        The masked copy, in the same train/eval mode as ``module``.

    Raises:
        ModelError: A mask names a weight that is not a prunable weight of
            ``module``, or its shape differs from the weight's.
    """
    result = copy.deepcopy(module)
    weights = prunable_weights(result)
    unknown = [name for name in mask if name not in weights]
    if unknown:
        raise ModelError(
            f"mask names weights the module does not have as prunable weights: {unknown[:_MAX_LISTED]}; "
            f"prunable weights are {list(weights)[:_MAX_LISTED * 2]}"
        )
    for name, keep in mask.items():
        weight = weights[name]
        if tuple(keep.shape) != tuple(weight.shape):
            raise ModelError(
                f"mask for '{name}': expected shape {tuple(weight.shape)}, found {tuple(keep.shape)}"
            )
    with torch.no_grad():
        for name, keep in mask.items():
            weight = weights[name]
            weight.mul_((keep != 0).to(device=weight.device, dtype=weight.dtype))
    return result


def mask_transfer_problem(parent: LoadedModel, pruned: LoadedModel) -> str | None:
    """Why ``pruned``'s zero mask cannot be applied to ``parent``, or ``None`` when it can.

    A mask transfers only between the same prunable weights of the same shapes:
    not from a structurally pruned (smaller) network, nor from a model whose
    weights are not PyTorch tensors (an ONNX file). The answer is one line that
    says what to configure instead: the pair's pre-fine-tune checkpoint(s).
    """
    hint = (
        f"configure the pair's pre-fine-tune checkpoint: pre_finetune = \"<model entry of '{pruned.name}' "
        "right after pruning, before fine-tuning>\" (or schedule = [...] for several pruning steps)"
    )
    modules = {m.name: m.module for m in (parent, pruned)}
    for name, module in modules.items():
        if module is None or not prunable_weights(module):
            what = type(module).__name__ if module is not None else "an ensemble"
            return (
                f"'{name}' ({what}, format {parent.spec.format if name == parent.name else pruned.spec.format!r}) "
                f"has no PyTorch Conv/Linear weights to read or apply a zero mask; {hint}"
            )
    theirs = {k: tuple(w.shape) for k, w in prunable_weights(modules[parent.name]).items()}
    ours = {k: tuple(w.shape) for k, w in prunable_weights(modules[pruned.name]).items()}
    for key, shape in ours.items():
        if key not in theirs:
            return (
                f"'{pruned.name}' has a prunable weight '{key}' that '{parent.name}' lacks (another architecture "
                f"or format, here {pruned.spec.format!r} vs {parent.spec.format!r}): a zero mask cannot be carried "
                f"across; {hint}"
            )
        if theirs[key] != shape:
            return (
                f"'{pruned.name}' is structurally pruned ('{key}' has shape {shape}, parent {theirs[key]}): "
                f"a zero mask cannot be carried across architectures; {hint}"
            )
    return None
