"""Build a pruned family from a configured parent and write it out for the gates.

:func:`build_family` loads the parent model entry, runs
:func:`~prunecheck.pruning.iterative_prune`, and writes to ``out_dir``:

- ``<name>.pt``: each step's (fine-tuned) state dict, and ``<name>-pre.pt``:
  its pre-fine-tune snapshot (only when a fine-tune callable was given;
  otherwise the two are the same model and only ``<name>.pt`` is written);
- ``prunecheck-snippet.toml``: ``[models.*]`` entries for these files (same
  factory and kwargs as the parent), a ``[[families]]`` entry and one
  ``[[pairs]]`` entry per step with ``pre_finetune`` and ``schedule``, to
  append to the configuration that defines the parent and the dataset;
- ``family.json``: a manifest (ratios, files, sparsities).

Model names are ``<parent>-<method>-<percent>`` (``resnet-global_magnitude-87.5``),
with ``-pre`` for snapshots. Family member ratios in the snippet are the
*measured* weight sparsity (zero Conv/Linear weights over all of them), the
unit of prune potential (seed 002, Def. 1), also for structured methods whose
``ratio`` counts filters.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from prunecheck.config.settings import ModelSpec
from prunecheck.core.errors import ModelError
from prunecheck.core.io import atomic_file, write_text
from prunecheck.pruning.iterative import FineTune, PruneStep, check_ratios, iterative_prune
from prunecheck.pruning.methods import STRUCTURED_METHODS

__all__ = ["build_family", "member_names", "SNIPPET_FILENAME", "MANIFEST_FILENAME"]

SNIPPET_FILENAME = "prunecheck-snippet.toml"
MANIFEST_FILENAME = "family.json"


def member_names(parent: str, method: str, ratios: Sequence[float]) -> list[str]:
    """Model entry names of the family members, e.g. ``['net-l1_filter-50', ...]``.

    Raises:
        ValueError: Two ratios give the same name (they differ below 1e-4 %).
    """
    names = [f"{parent}-{method}-{100 * r:.6g}" for r in ratios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"ratios: expected ratios that give distinct model names, found {dupes} more than once")
    return names


def build_family(
    parent_spec: ModelSpec,
    method: str,
    ratios: Sequence[float],
    out_dir: str | os.PathLike[str],
    finetune: FineTune | None = None,
    *,
    dataset: str | None = None,
    catalogue: Mapping[str, ModelSpec] | None = None,
    relative_to: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    strict: bool = True,
    **kwargs: Any,
) -> Path:
    """Prune a configured parent iteratively and write the family and its config snippet.

    Args:
        parent_spec: The parent's model entry; it must be a single model with
            a ``factory`` (the pruned state dicts are loaded into the same architecture).
        method: A name of :data:`prunecheck.pruning.METHODS`.
        ratios: Cumulative target ratios, increasing, each in [0, 1).
        out_dir: Directory for the files (created).
        finetune: ``finetune(model, mask) -> model`` (see :func:`iterative_prune`);
            ``None`` prunes without fine-tuning.
        dataset: The dataset entry name the snippet's family and pairs use
            (required: the snippet is only valid with it).
        catalogue: All model entries (only needed if the parent refers to others).
        relative_to: Write weights paths relative to this directory (the
            config file's) when they lie under it; absolute otherwise.
        progress: Called with one line per step (the command prints them).
        strict: See :func:`iterative_prune`.
        **kwargs: Options of the method.

    Returns:
        The path of the written ``prunecheck-snippet.toml``.

    Raises:
        ModelError: The parent cannot be loaded or has no factory.
        ValueError: Bad method, ratios or options.
    """
    from prunecheck.nn.models import load_model

    values = check_ratios(ratios)
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(
            f"dataset: expected the name of the dataset entry the family is evaluated on, found {dataset!r}"
        )
    if parent_spec.members:
        raise ModelError(f"model '{parent_spec.name}': expected a single model to prune, found an ensemble")
    if not parent_spec.factory:
        raise ModelError(
            f"model '{parent_spec.name}': pruning writes state dicts, which need the parent's 'factory' "
            f"to rebuild the architecture; found format {parent_spec.format!r} without a factory"
        )
    names = member_names(parent_spec.name, method, values)
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    parent = load_model(parent_spec, catalogue).module
    if parent is None:
        raise ModelError(f"model '{parent_spec.name}': loaded without a module; cannot prune it")

    steps = iterative_prune(parent, method, values, finetune, strict=strict, **kwargs)
    records = []
    for name, step in zip(names, steps):
        record: dict[str, Any] = {"ratio": step.ratio, "model": name, "weights": str(out / f"{name}.pt")}
        _save(step.finetuned, out / f"{name}.pt")
        if finetune is not None:
            record["pre_model"] = f"{name}-pre"
            record["pre_weights"] = str(out / f"{name}-pre.pt")
            _save(step.pre_finetune, out / f"{name}-pre.pt")
        if step.report is not None:
            record["weight_sparsity"] = _final_sparsity(step)
            record["filter_sparsity"] = step.report.filter_sparsity
            record["summary"] = step.report.summary()
        records.append(record)
        if progress is not None:
            what = "pruned and fine-tuned" if finetune is not None else "pruned (no fine-tuning)"
            progress(f"{name}: {what}; {record.get('summary', '')} -> {record['weights']}")

    manifest = {
        "parent": parent_spec.name,
        "method": method,
        "ratios": list(values),
        "finetuned": finetune is not None,
        "options": {k: v for k, v in kwargs.items() if _jsonable(v)},
        "steps": records,
    }
    write_text(out / MANIFEST_FILENAME, json.dumps(manifest, indent=2) + "\n")
    base = Path(relative_to).expanduser().absolute() if relative_to is not None else None
    snippet = _snippet(parent_spec, method, dataset, records, finetune is not None, base)
    path = out / SNIPPET_FILENAME
    write_text(path, snippet)
    return path


def _final_sparsity(step: PruneStep) -> float:
    from prunecheck.nn.models import prunable_weights

    weights = prunable_weights(step.finetuned)
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    return zeros / total if total else 0.0


def _save(module: nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_file(path) as handle:
        torch.save(state, handle)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- TOML writing


def _toml(value: Any) -> str:
    """A TOML literal for plain values (str, bool, int, finite float, list, dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite float {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, (Path, os.PathLike)):
        return json.dumps(Path(value).as_posix())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {type(value).__name__} {value!r} to TOML")


def _path_text(path: str, base: Path | None) -> str:
    p = Path(path)
    if base is not None:
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            pass
    return p.as_posix()


def _model_table(spec: ModelSpec, name: str, weights: str, base: Path | None) -> list[str]:
    lines = [f"[models.{json.dumps(name)}]", f"factory = {_toml(spec.factory)}"]
    if spec.kwargs:
        lines.append(f"kwargs = {_toml(dict(spec.kwargs))}")
    lines.append(f"weights = {_toml(_path_text(weights, base))}")
    if spec.input_shape is not None:
        lines.append(f"input_shape = {_toml(list(spec.input_shape))}")
    return lines + [""]


def _snippet(
    spec: ModelSpec,
    method: str,
    dataset: str,
    records: Sequence[Mapping[str, Any]],
    finetuned: bool,
    base: Path | None,
) -> str:
    ratios = ", ".join(f"{r['ratio']:g}" for r in records)
    lines = [
        f"# Generated by `prunecheck prune`: {method} family of model '{spec.name}' at ratios {ratios}.",
        f"# Append to the configuration that defines model '{spec.name}' and dataset '{dataset}'.",
    ]
    if not finetuned:
        lines.append("# No fine-tuning was done: each model is the pruned parent (no pre_finetune entries).")
    lines.append("")
    for r in records:
        lines += _model_table(spec, r["model"], r["weights"], base)
        if finetuned:
            lines += _model_table(spec, r["pre_model"], r["pre_weights"], base)
    members = ", ".join(
        "{ " + f"model = {json.dumps(r['model'])}, ratio = {_toml(round(float(r['weight_sparsity']), 6))}" + " }"
        for r in records
    )
    lines += [
        "# Member ratios are measured weight sparsities (zero Conv/Linear weights / all of them).",
        "[[families]]",
        f"name = {json.dumps(f'{spec.name}-{method}')}",
        f"parent = {json.dumps(spec.name)}",
        f"dataset = {json.dumps(dataset)}",
        f"members = [{members}]",
        f"# deployed = {json.dumps(records[-1]['model'])}  # the member to gate against the prune potential",
        "",
    ]
    for i, r in enumerate(records):
        lines += [
            "[[pairs]]",
            f"parent = {json.dumps(spec.name)}",
            f"pruned = {json.dumps(r['model'])}",
            f"dataset = {json.dumps(dataset)}",
        ]
        if finetuned:
            lines.append(f"pre_finetune = {json.dumps(r['pre_model'])}")
            if i > 0:
                lines.append(f"schedule = {_toml([x['pre_model'] for x in records[: i + 1]])}")
        if method in STRUCTURED_METHODS:
            lines.append('mask_mode = "channels"')
        lines.append("")
    return "\n".join(lines)
