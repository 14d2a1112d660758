"""``prunecheck prune``: build a pruned family of a configured model.

Wired into :mod:`prunecheck.cli` with::

    prune = commands.add_parser("prune", help=run_prune.__doc__)
    add_prune_arguments(prune)
    prune.set_defaults(run=run_prune)

Example::

    prunecheck prune --model resnet20 --method global_magnitude --ratios 0.5,0.7,0.9 \\
        --out pruned/ --finetune mytrain:finetune

loads model entry ``resnet20`` of the configuration, prunes it iteratively (seed
002, Alg. 1), fine-tunes each step with ``mytrain.finetune(model, mask)`` if
given, and writes the state dicts plus ``pruned/prunecheck-snippet.toml`` to
append to the configuration.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Callable

from prunecheck.core.errors import ConfigError, PrunecheckError

__all__ = ["add_prune_arguments", "run_prune", "parse_ratios"]

_METHODS = (
    "global_magnitude", "random_unstructured", "l1_filter", "random_channels",
    "bn_scale", "ebn_magnitude", "hrank",
)  # kept equal to prunecheck.pruning.METHODS (tested) so --help does not import torch


def parse_ratios(text: str) -> tuple[float, ...]:
    """``"0.5,0.7,0.9"`` -> ``(0.5, 0.7, 0.9)``; an argparse ``type=``.

    Raises:
        argparse.ArgumentTypeError: Not numbers, not in [0, 1), or not increasing.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated prune ratios like 0.5,0.7,0.9, found {text!r}")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in [0, 1), found {part!r} in {text!r}") from None
        if not 0.0 <= value < 1.0:
            raise argparse.ArgumentTypeError(f"expected prune ratios in [0, 1), found {part} in {text!r}")
        if values and value <= values[-1]:
            raise argparse.ArgumentTypeError(
                f"expected cumulative ratios in increasing order, found {part} after {values[-1]:g} in {text!r}"
            )
        values.append(value)
    return tuple(values)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``prunecheck prune`` options to a (sub)parser."""
    parser.add_argument("--config", metavar="PATH", default=None,
                        help="configuration file defining the model (default: discovered as pytest does)")
    parser.add_argument("--model", metavar="NAME", required=True, help="model entry of the configuration to prune")
    parser.add_argument("--method", metavar="METHOD", required=True, choices=_METHODS,
                        help=f"pruning method, one of: {', '.join(_METHODS)}")
    parser.add_argument("--ratios", metavar="R1,R2,...", required=True, type=parse_ratios,
                        help="cumulative target prune ratios in [0, 1), increasing (fraction of weights "
                             "for unstructured methods, of conv filters for structured ones)")
    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="directory for weights and the snippet")
    parser.add_argument("--finetune", metavar="MODULE:CALLABLE", default=None,
                        help="fine-tuning function finetune(model, mask) -> model, imported from the current "
                             "directory or sys.path; one that takes a progress keyword gets a progress(done, total) "
                             "callback, drawn as a bar (default: no fine-tuning)")
    parser.add_argument("--dataset", metavar="NAME", default=None,
                        help="dataset entry for the snippet and for data-driven methods (default: the one the "
                             "model's pairs/families use, or the only dataset)")
    parser.add_argument("--exclude", metavar="MODULE", action="append", default=[],
                        help="module name to leave unpruned (repeatable)")
    parser.add_argument("--seed", metavar="N", type=int, default=None,
                        help="seed of the random methods and of the batch sample (default: run.seed of the config)")
    parser.add_argument("--scope", metavar="SCOPE", choices=("global", "layer"), default="global",
                        help="bn_scale / ebn_magnitude: rank channels over the network or per layer. Default: %(default)r")
    parser.add_argument("--ebn-estimate", metavar="KIND", choices=("closed_form", "empirical"), default="closed_form",
                        help="ebn_magnitude: the paper's closed form from BN gamma/beta, or the mean post-ReLU "
                             "BN output measured on batches. Default: %(default)r")
    parser.add_argument("--batches", metavar="N", type=_positive_int, default=4,
                        help="batches of the dataset for hrank / empirical ebn_magnitude. Default: %(default)r")
    parser.add_argument("--batch-size", metavar="N", type=_positive_int, default=32,
                        help="images per batch for those methods. Default: %(default)r")


def _import_callable(target: str) -> Callable[..., Any]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PrunecheckError(f"--finetune: expected 'package.module:callable', found {target!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PrunecheckError(f"--finetune: cannot import module '{module_name}' of {target!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PrunecheckError(f"--finetune: module '{module_name}' has no attribute '{attr}' ({target!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PrunecheckError(f"--finetune: {target!r} is not callable")
    return obj


def _pick_dataset(settings: Any, model: str, explicit: str | None) -> str:
    if explicit is not None:
        if explicit not in settings.datasets:
            raise ConfigError(
                f"--dataset: expected a dataset entry of the configuration, found {explicit!r}; "
                f"known datasets: {sorted(settings.datasets)}",
                source=settings.source,
            )
        return explicit
    used = sorted({p.dataset for p in settings.pairs if p.parent == model}
                  | {f.dataset for f in settings.families if f.parent == model})
    if len(used) == 1:
        return used[0]
    if len(settings.datasets) == 1:
        return next(iter(settings.datasets))
    candidates = used or sorted(settings.datasets)
    raise ConfigError(
        f"--dataset: cannot tell which dataset the family of '{model}' is for; expected one, "
        f"found candidates {candidates}; pass --dataset NAME",
        source=settings.source,
    )


def _sample_batches(settings: Any, dataset: str, n: int, batch_size: int, seed: int) -> list[Any]:
    import numpy as np

    from prunecheck.data.base import normaliser
    from prunecheck.data.registry import load_dataset

    ds = load_dataset(settings.datasets[dataset], limit=settings.run.limit, seed=settings.run.seed)
    order = np.random.default_rng(seed).permutation(len(ds))[: n * batch_size]
    normalise = normaliser(ds.mean, ds.std)  # the inputs the engine gives the model
    starts = range(0, len(order), batch_size)
    return [normalise(ds.images(np.sort(order[start:start + batch_size]))) for start in starts]


def run_prune(args: argparse.Namespace) -> int:
    """Prune a configured model iteratively and write its family and a config snippet."""
    try:
        return _run_prune(args)
    except ValueError as exc:  # library validation errors: one line, not a traceback
        raise PrunecheckError(f"prune: {exc}") from exc


def _run_prune(args: argparse.Namespace) -> int:
    from prunecheck.config.loader import find_config, load_settings
    from prunecheck.pruning.family import build_family, member_names

    path = find_config(Path.cwd(), args.config)
    if path is None:
        raise ConfigError(
            "prunecheck prune needs a configuration that defines the model to prune; found no "
            "prunecheck.toml or [tool.prunecheck] in pyproject.toml here; pass --config PATH"
        )
    settings = load_settings(path)
    spec = settings.models.get(args.model)
    if spec is None:
        raise ConfigError(
            f"--model: expected a model entry of the configuration, found {args.model!r}; "
            f"known models: {sorted(settings.models)}",
            source=str(path),
        )
    names = member_names(spec.name, args.method, args.ratios)
    taken = [n for n in names + [f"{n}-pre" for n in names] if n in settings.models]
    if taken:
        raise ConfigError(
            f"the family's model names {taken} are already model entries; remove them from the "
            "configuration (or rename them) before building the family again",
            source=str(path),
        )
    dataset = _pick_dataset(settings, spec.name, args.dataset)
    seed = settings.run.seed if args.seed is None else args.seed
    kwargs: dict[str, Any] = {}
    if args.exclude:
        kwargs["exclude"] = tuple(args.exclude)
    if args.method in ("random_unstructured", "random_channels"):
        kwargs["seed"] = seed
    if args.method in ("bn_scale", "ebn_magnitude"):
        kwargs["scope"] = args.scope
    if args.method == "ebn_magnitude":
        kwargs["estimate"] = args.ebn_estimate
    if args.method == "hrank" or (args.method == "ebn_magnitude" and args.ebn_estimate == "empirical"):
        kwargs["batches"] = _sample_batches(settings, dataset, args.batches, args.batch_size, seed)
    finetune = _import_callable(args.finetune) if args.finetune else None
    if finetune is None:
        print("prunecheck prune: no --finetune given: the models are pruned without fine-tuning "
              "(no pre-fine-tune snapshots are written)", file=sys.stderr)

    from prunecheck.core.progress import stderr_reporter, with_finetune_progress

    progress = stderr_reporter()
    if finetune is not None:
        finetune = with_finetune_progress(finetune, progress, len(names))

    snippet = build_family(
        spec, args.method, args.ratios, args.out, finetune,
        dataset=dataset, catalogue=settings.models, relative_to=path.parent,
        progress=progress, **kwargs,
    )
    print(f"wrote {len(names)} pruned model(s) of '{spec.name}' to {snippet.parent}")
    print(f"append {snippet} to {path} to gate them")
    return 0
