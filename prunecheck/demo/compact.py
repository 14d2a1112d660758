"""Compact storage of many small state dicts in one ``.npz`` file (the shipped demo zoo).

Floating-point tensors are stored in half precision; a tensor that is at least
half zeros (a magnitude-pruned weight) is stored sparsely as a bit mask of its
non-zeros (``numpy.packbits``) plus the half-precision non-zero values. Integer
tensors (BatchNorm's ``num_batches_tracked``) are stored as they are. The
archive is a plain ``numpy.savez_compressed`` file: it loads with
``allow_pickle=False``, so reading it executes nothing.

Keys inside the archive: ``<model>/<param>`` (dense), ``<model>/<param>#mask``,
``#values`` and ``#shape`` (sparse). Model and parameter names never contain
``#``.

Half precision rounds every weight (relative error <= 2**-11); the shipped
manifest's accuracies are measured on the rounded weights, i.e. on exactly what
the demo evaluates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from prunecheck.core.errors import PrunecheckError
from prunecheck.core.io import atomic_file

#: Tensors with at least this fraction of exact zeros are stored sparsely.
SPARSE_MIN_ZEROS = 0.5
_FP16_MAX = float(np.finfo(np.float16).max)


def _check_name(name: str) -> None:
    if "#" in name:
        raise PrunecheckError(f"compact zoo: expected names without '#', found {name!r}")


def pack_state(model: str, state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The archive entries of one state dict (see the module docstring for the layout).

    Raises:
        PrunecheckError: a name contains ``#``, or a value does not fit in half precision.
    """
    _check_name(model)
    entries: dict[str, np.ndarray] = {}
    for param, tensor in state.items():
        _check_name(param)
        key = f"{model}/{param}"
        array = tensor.detach().cpu().numpy()
        if not np.issubdtype(array.dtype, np.floating):
            entries[key] = array
            continue
        if not np.all(np.isfinite(array)) or np.abs(array).max(initial=0.0) > _FP16_MAX:
            raise PrunecheckError(f"compact zoo: {key}: expected finite values within float16 range")
        nonzero = array != 0
        if array.ndim >= 2 and 1.0 - nonzero.mean() >= SPARSE_MIN_ZEROS:
            entries[key + "#mask"] = np.packbits(nonzero.ravel())
            entries[key + "#values"] = array[nonzero].astype(np.float16)
            entries[key + "#shape"] = np.asarray(array.shape, dtype=np.int64)
        else:
            entries[key] = array.astype(np.float16)
    return entries


def unpack_states(entries: Mapping[str, np.ndarray]) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of :func:`pack_state` over a whole archive: model -> state dict (float32 floats)."""
    states: dict[str, dict[str, torch.Tensor]] = {}
    for key in sorted(entries):
        model, _, rest = key.partition("/")
        param, _, part = rest.partition("#")
        if part in ("values", "shape"):
            continue  # read together with "#mask"
        if part == "mask":
            shape = tuple(int(s) for s in entries[f"{model}/{param}#shape"])
            size = int(np.prod(shape))
            mask = np.unpackbits(entries[key], count=size).astype(bool)
            dense = np.zeros(size, dtype=np.float32)
            dense[mask] = entries[f"{model}/{param}#values"].astype(np.float32)
            array = dense.reshape(shape)
        else:
            array = entries[key]
            if np.issubdtype(array.dtype, np.floating):
                array = array.astype(np.float32)
        states.setdefault(model, {})[param] = torch.from_numpy(np.array(array, copy=True))  # copy keeps 0-d shapes
    return states


def write_archive(path: Path, states: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Write every state dict of ``states`` (model name -> state dict) into one compressed archive."""
    entries: dict[str, np.ndarray] = {}
    for model, state in states.items():
        entries.update(pack_state(model, state))
    with atomic_file(path) as fh:
        np.savez_compressed(fh, **entries)


def read_archive(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every state dict in the archive at ``path`` (model name -> float32 state dict)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return unpack_states({key: data[key] for key in data.files})
    except (OSError, ValueError, KeyError) as exc:
        raise PrunecheckError(f"compact zoo {path}: expected a readable weights archive, found {exc}") from None


def rounded(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as it comes back from the archive (floats rounded to half precision)."""
    return unpack_states(pack_state("m", state))["m"]


__all__ = ["SPARSE_MIN_ZEROS", "pack_state", "read_archive", "rounded", "unpack_states", "write_archive"]
