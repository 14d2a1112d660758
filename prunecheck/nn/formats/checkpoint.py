"""Reading state dicts: safe unpickling, nested and prefixed checkpoints, safetensors.

``torch.load`` always runs with ``weights_only=True``. The only globals added
to torch's allowlist are numpy *scalars* (``numpy.int64(3)``, ``numpy.float64(0.9)``
as training scripts store epochs and metrics next to the weights): the scalar
constructor, ``numpy.dtype`` and the numeric dtype classes. numpy arrays and
everything else stay refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from prunecheck.core.errors import ModelError

__all__ = [
    "CHECKPOINT_KEYS",
    "NUMPY_SCALAR_GLOBALS",
    "safe_load",
    "is_state_dict",
    "extract_state_dict",
    "read_safetensors",
]

#: Keys under which training scripts commonly nest the state dict in a checkpoint.
CHECKPOINT_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model")

try:  # numpy 2
    from numpy._core.multiarray import scalar as _SCALAR
except ImportError:  # numpy 1
    from numpy.core.multiarray import scalar as _SCALAR
_SCALAR_TYPES = (
    "?", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "e", "f", "d", "g", "F", "D",
)
#: What ``torch.load(weights_only=True)`` may additionally build: numpy scalars, nothing wider.
#: The scalar constructor is listed under its numpy 2 and numpy 1 module paths.
NUMPY_SCALAR_GLOBALS: list[Any] = [
    _SCALAR,
    (_SCALAR, "numpy.core.multiarray.scalar"),
    (_SCALAR, "numpy._core.multiarray.scalar"),
    np.dtype,
    *sorted({type(np.dtype(code)) for code in _SCALAR_TYPES}, key=lambda t: t.__name__),
]


def safe_load(path: Path, *, extra_globals: list[Any] | tuple[Any, ...] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` with numpy scalars (and ``extra_globals``) allowed."""
    with torch.serialization.safe_globals([*NUMPY_SCALAR_GLOBALS, *extra_globals]):
        return torch.load(path, map_location="cpu", weights_only=True)


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of string keys to tensors (``*_extra_state`` entries may be anything)."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) or k.endswith("_extra_state") for k, v in obj.items())
    )


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = sorted(map(str, obj))
        return f"a dict with keys {keys[:10]}" + (f" (+{len(keys) - 10} more)" if len(keys) > 10 else "")
    return type(obj).__name__


def _nested(obj: Any, key: str) -> Any:
    """``obj[key]``, or, when ``key`` is dotted and not a key itself, ``obj[a][b]...``."""
    if isinstance(obj, Mapping) and key in obj:
        return obj[key]
    current = obj
    for part in key.split("."):
        if not isinstance(current, Mapping) or part not in current:
            raise KeyError(part)
        current = current[part]
    return current


def extract_state_dict(
    name: str,
    path: Path | str,
    obj: Any,
    *,
    state_dict_key: str | None = None,
    strip_prefix: str | None = None,
) -> dict[str, Any]:
    """The state dict inside a loaded checkpoint.

    Args:
        name: The model entry's name (for messages).
        path: The file (for messages).
        obj: What the file held.
        state_dict_key: Where the state dict sits (``"state_dict"``, or a dotted
            path such as ``"ema.model"``); without it, the object itself or one of
            :data:`CHECKPOINT_KEYS`.
        strip_prefix: Keep only keys starting with this prefix, with it removed
            (``"model."`` selects a Lightning module's ``self.model``).

    Raises:
        ModelError: No state dict where expected, or no key has the prefix.
    """
    if state_dict_key is not None:
        try:
            state = _nested(obj, state_dict_key)
        except KeyError:
            raise ModelError(
                f"model '{name}': state_dict_key {state_dict_key!r} not found in {path}; "
                f"the file holds {_describe(obj)}"
            ) from None
        if not is_state_dict(state):
            raise ModelError(
                f"model '{name}': expected a state dict (name -> tensor) under {state_dict_key!r} in {path}, "
                f"found {_describe(state)}"
            )
    elif is_state_dict(obj):
        state = obj
    else:
        found = next((obj[k] for k in CHECKPOINT_KEYS if isinstance(obj, Mapping) and is_state_dict(obj.get(k))), None)
        if found is None:
            raise ModelError(
                f"model '{name}': expected {path} to hold a state dict (name -> tensor) or a checkpoint dict "
                f"with one under {list(CHECKPOINT_KEYS)}, found {_describe(obj)}; "
                "set state_dict_key to where it is"
            )
        state = found
    state = dict(state)
    if strip_prefix:
        kept = {k[len(strip_prefix):]: v for k, v in state.items() if k.startswith(strip_prefix)}
        if not kept:
            raise ModelError(
                f"model '{name}': strip_prefix {strip_prefix!r} matches no key of the state dict in {path}; "
                f"keys start like {sorted(state)[:5]}"
            )
        state = kept
    return state


def read_safetensors(name: str, path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (a flat name -> tensor map; no code can be in it).

    Raises:
        ModelError: safetensors is not installed, or the file is not a safetensors file.
    """
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ModelError(
            f"model '{name}': format 'safetensors' needs the safetensors package; "
            "install it with: pip install 'prunecheck[safetensors]'"
        ) from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - the library raises several types for bad headers
        raise ModelError(
            f"model '{name}': cannot read {path} as safetensors: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
