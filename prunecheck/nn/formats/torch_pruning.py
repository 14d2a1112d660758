"""Files written by Torch-Pruning's ``tp.state_dict`` (structurally pruned models).

``tp.state_dict(model)`` stores every submodule's ``__dict__`` (parameters,
buffers, the submodule objects themselves and attributes such as
``out_channels``), so that ``tp.load_state_dict`` can rebuild the pruned,
smaller architecture onto a freshly built unpruned model. The file is a
pickle of ``nn.Module`` objects, so it is read with
``torch.load(weights_only=True)`` whose allowlist is extended by exactly the
module classes the factory's own model is made of (plus numpy scalars): the
factory is code the configuration already runs, a class the factory does not
use is refused, and no other callable can run. The rebuild itself is
Torch-Pruning's loader (optional extra ``prunecheck[torch-pruning]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from prunecheck.core.errors import ModelError
from prunecheck.nn.formats.checkpoint import safe_load

__all__ = ["load_tp_state_dict"]

_KEYS = ("full_state_dict", "attributions")


def load_tp_state_dict(name: str, path: Path, model: nn.Module) -> nn.Module:
    """Rebuild a Torch-Pruning checkpoint onto ``model`` (the factory's unpruned network).

    Raises:
        ModelError: torch-pruning is not installed, the file needs classes the
            factory's model does not use (or anything else outside the
            weights-only allowlist), or it is not a ``tp.state_dict`` file.
    """
    try:
        import torch_pruning as tp
    except ImportError:
        raise ModelError(
            f"model '{name}': format 'torch_pruning' needs Torch-Pruning's loader; "
            "install it with: pip install 'prunecheck[torch-pruning]'"
        ) from None
    classes = sorted({type(m) for m in model.modules()}, key=lambda t: f"{t.__module__}.{t.__qualname__}")
    try:
        state: Any = safe_load(path, extra_globals=classes)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        first = str(exc).splitlines()
        detail = next((line for line in first if "got <" in line or "Unsupported global" in line), first[0] if first else "")
        raise ModelError(
            f"model '{name}': cannot read {path} as a Torch-Pruning state dict with torch.load(weights_only=True) "
            f"allowing only the factory's module classes {[c.__name__ for c in classes]}: "
            f"{type(exc).__name__}: {detail.strip()[:300]}"
        ) from exc
    if not isinstance(state, dict) or not all(k in state for k in _KEYS):
        found = f"a dict with keys {sorted(map(str, state))[:10]}" if isinstance(state, dict) else type(state).__name__
        raise ModelError(
            f"model '{name}': expected {path} to be written by tp.state_dict (keys {list(_KEYS)}), found {found}; "
            "a plain state dict of an unpruned model needs format 'state_dict'"
        )
    unknown = sorted(set(state["full_state_dict"]) - {n for n, _ in model.named_modules()})
    if unknown:
        raise ModelError(
            f"model '{name}': {path} describes modules the factory's model does not have: {unknown[:5]}; "
            "is the factory the architecture that was pruned?"
        )
    try:
        return tp.load_state_dict(model, state_dict=state)
    except Exception as exc:  # noqa: BLE001 - third-party loader
        raise ModelError(f"model '{name}': Torch-Pruning's load_state_dict failed on {path}: {type(exc).__name__}: {exc}") from exc
