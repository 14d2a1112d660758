"""``torch.export`` programs (``.pt2`` archives written by ``torch.export.save``).

``torch.export.load`` is not safe on an untrusted file by itself: besides the
JSON graph and raw tensor payloads, an archive may hold weights or constants
marked ``use_pickle`` (read with ``torch.load(weights_only=False)``), opaque
objects (``pickle.loads``), TorchBind objects, sample inputs it retries with
``weights_only=False`` when the safe load fails, and AOTInductor shared
libraries. :func:`check_archive` therefore reads the archive first and
refuses all of these; only then is ``torch.export.load`` called. What is left
is JSON, raw tensor bytes and sample inputs that load with
``torch.load(weights_only=True)``.

An exported graph has its train/eval mode and, unless exported with a dynamic
batch dimension, its batch size baked in. :class:`ExportedModule` wraps it:
``train()``/``eval()`` only set a flag, and a fixed-batch program is run on
chunks of that size (the last one zero-padded, padding rows dropped).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunecheck.core.errors import ModelError

__all__ = ["ExportedModule", "check_archive", "load_exported"]


def _constants():
    from torch.export.pt2_archive import constants

    return constants


def _refuse(name: str, path: Path, what: str) -> ModelError:
    return ModelError(
        f"model '{name}': refusing {path}: {what}; loading it would execute code from the file. "
        "Re-export with torch.export.save from a model whose weights and constants are plain tensors"
    )


def check_archive(name: str, path: Path) -> None:
    """Refuse a ``.pt2`` archive whose loading could run pickled or compiled code.

    Raises:
        ModelError: Not a zip archive, no exported program in it, or an entry
            that ``torch.export.load`` would unpickle or execute.
    """
    c = _constants()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"model '{name}': expected {path} to be a torch.export .pt2 archive (a zip file): {exc}") from exc
    with archive:
        names = archive.namelist()
        roots = {n.split("/", 1)[0] for n in names if "/" in n}
        if len(roots) != 1:
            raise ModelError(f"model '{name}': expected one root folder in the .pt2 archive {path}, found {sorted(roots)}")
        root = roots.pop() + "/"
        relative = [n[len(root):] for n in names if n.startswith(root)]
        if not any(r.startswith(c.MODELS_DIR) and r.endswith(".json") for r in relative):
            raise ModelError(f"model '{name}': no exported program ({c.MODELS_DIR}*.json) in {path}")
        for rel in relative:
            if rel.startswith((c.AOTINDUCTOR_DIR, c.EXECUTORCH_DIR, c.MTIA_DIR)):
                raise _refuse(name, path, f"it contains compiled code ({rel})")
            if rel.startswith((c.WEIGHTS_DIR, c.CONSTANTS_DIR)) and rel.endswith(".pt"):
                raise _refuse(name, path, f"it stores weights in the legacy pickled layout ({rel})")
        for rel in relative:
            if rel.startswith((c.WEIGHTS_DIR, c.CONSTANTS_DIR)) and rel.endswith(".json"):
                _check_payload_config(name, path, rel, json.loads(archive.read(root + rel)), c)
            elif rel.startswith(c.SAMPLE_INPUTS_DIR):
                try:
                    torch.load(io.BytesIO(archive.read(root + rel)), map_location="cpu", weights_only=True)
                except Exception as exc:  # noqa: BLE001 - torch.export.load would retry with weights_only=False
                    raise _refuse(name, path, f"its sample inputs {rel} need more than weights-only unpickling ({type(exc).__name__})") from None


def _check_payload_config(name: str, path: Path, rel: str, config: Any, c: Any) -> None:
    entries = config.get("config", {}) if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise ModelError(f"model '{name}': unexpected payload config {rel} in {path}: {str(config)[:120]}")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            raise ModelError(f"model '{name}': unexpected payload entry '{fqn}' in {rel} of {path}")
        if meta.get("use_pickle"):
            raise _refuse(name, path, f"'{fqn}' is a pickled payload")
        if rel.startswith(c.CONSTANTS_DIR) and not str(meta.get("path_name", "")).startswith(c.TENSOR_CONSTANT_FILENAME_PREFIX):
            raise _refuse(name, path, f"constant '{fqn}' is a custom or opaque object, not a tensor")


class ExportedModule(nn.Module):
    """An exported program as an ``nn.Module`` the engine can run on any batch size.

    Attributes:
        program: ``ExportedProgram.module()``, the graph with its weights.
        fixed_batch: The batch size the program was exported for, or ``None``
            when its batch dimension is dynamic.
    """

    def __init__(self, program: nn.Module, fixed_batch: int | None) -> None:
        super().__init__()
        self.program = program
        self.fixed_batch = fixed_batch

    def train(self, mode: bool = True) -> "ExportedModule":
        """Only records the flag: an exported graph has its mode baked in (and refuses ``train()``)."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_batch is None or x.shape[0] == self.fixed_batch:
            return self.program(x)
        outputs = []
        for chunk in x.split(self.fixed_batch):
            n = chunk.shape[0]
            if n < self.fixed_batch:
                chunk = torch.cat([chunk, chunk.new_zeros((self.fixed_batch - n, *chunk.shape[1:]))])
            outputs.append(self.program(chunk)[:n])
        return torch.cat(outputs)

    def analysis_graph(self) -> tuple[torch.fx.GraphModule, int]:
        """(graph, batch size to trace it with) for :func:`prunecheck.nn.structure.structural_keep`."""
        return self.program, self.fixed_batch or 1


def _fixed_batch(program: Any) -> int | None:
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    user_inputs = set(program.graph_signature.user_inputs)
    for node in placeholders:
        if node.name in user_inputs or str(node.target) in user_inputs:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is not None and len(shape) > 0 and isinstance(shape[0], int):
                return int(shape[0])
            return None
    return None


def load_exported(name: str, path: Path) -> ExportedModule:
    """Check and load a ``torch.export`` archive.

    Raises:
        ModelError: The archive is refused by :func:`check_archive`, cannot be
            deserialised, or does not take exactly one input tensor.
    """
    check_archive(name, path)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - deserialisation errors have many types
        raise ModelError(
            f"model '{name}': cannot load {path} with torch.export.load: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    inputs = list(program.graph_signature.user_inputs)
    if len(inputs) != 1:
        raise ModelError(
            f"model '{name}': expected an exported program with one input (the image batch), "
            f"found {len(inputs)}: {inputs}"
        )
    return ExportedModule(program.module(), _fixed_batch(program))
