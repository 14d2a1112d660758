"""Deep validation: does everything the configuration names actually exist and fit?

:mod:`prunecheck.config.loader` checks a file's syntax and references without touching
anything else. :func:`deep_check` goes further, the checks ``prunecheck validate
--deep`` runs and the plugin runs once before the first test:

- every model factory imports;
- every weights file exists and loads into its architecture;
- every dataset root (and ``corruptions_root``) exists and the dataset loads with
  its stated classes (the loaders check class folders, label ranges and shapes);
- every model's output width matches the classes of each dataset it is gated on.

Every problem is collected, not just the first, as one line each (no tracebacks):
a new project's ``prunecheck init`` template reports all of its placeholders at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prunecheck.config.settings import Settings


class Loader(Protocol):
    """What the checks load through (a :class:`prunecheck.session.workspace.Workspace` is one)."""

    def model(self, name: str) -> Any: ...

    def dataset(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with the config key it comes from."""

    key: str  # e.g. models.parent.weights
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def _one_line(exc: BaseException) -> str:
    """The error's own message, on one line; foreign errors keep their type name."""
    from prunecheck.core.errors import PrunecheckError

    text = " ".join(str(exc).split())
    return text if isinstance(exc, PrunecheckError) else f"{type(exc).__name__}: {text}"


def _gated_on(settings: Settings) -> dict[str, set[str]]:
    """model name -> the datasets whose classes it must predict (pairs and families)."""
    uses: dict[str, set[str]] = {}

    def add(name: str, dataset: str) -> None:
        spec = settings.models.get(name)
        for member in (spec.members if spec is not None and spec.members else (name,)):
            uses.setdefault(member, set()).add(dataset)

    for pair in settings.pairs:
        names = (pair.parent, pair.pruned, pair.reference, pair.pre_finetune, *pair.schedule,
                 *pair.schedule_finetuned)
        for name in names:
            if name:
                add(name, pair.dataset)
    for family in settings.families:
        for name in (family.parent, *(member.model for member in family.members)):
            add(name, family.dataset)
    return uses


def config_dir_on_path(settings: Settings) -> None:
    """Factories such as ``models:resnet20`` live next to the config file, as in a run."""
    if settings.is_demo:
        return
    folder = str(Path(settings.source).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def deep_check(settings: Settings, loader: Loader) -> list[Problem]:
    """Every problem with the files, imports and shapes the settings name.

    Args:
        settings: Validated settings (syntax already checked by :mod:`prunecheck.config.loader`).
        loader: Loads models and datasets by name (memoised, so a run reuses them).

    Returns:
        The problems in config order (datasets, models, output widths); empty when all is well.
    """
    from prunecheck.nn.models import _import_factory, check_output_width

    config_dir_on_path(settings)
    problems: list[Problem] = []
    datasets: dict[str, Any] = {}
    for name, spec in settings.datasets.items():
        broken = False
        for field in ("root", "corruptions_root"):
            folder = getattr(spec, field)
            if folder is not None and spec.kind != "demo" and not Path(folder).exists():
                problems.append(Problem(f"datasets.{name}.{field}", f"folder not found: {folder}"))
                broken = True
        if broken:
            continue
        try:
            datasets[name] = loader.dataset(name)
        except Exception as exc:  # noqa: BLE001 - every loader failure is reported, none stops the check
            problems.append(Problem(f"datasets.{name}", _one_line(exc)))

    models: dict[str, Any] = {}
    for name, spec in settings.models.items():
        if spec.members:  # ensembles: their members are checked as models of their own
            continue
        broken = False
        if spec.factory:
            try:
                _import_factory(spec)
            except Exception as exc:  # noqa: BLE001 - a factory module may raise anything on import
                problems.append(Problem(f"models.{name}.factory", _one_line(exc).replace(f"model '{name}': ", "")))
                broken = True
        if spec.weights is not None and not Path(spec.weights).is_file():
            problems.append(Problem(f"models.{name}.weights", f"file not found: {spec.weights}"))
            broken = True
        if broken:
            continue
        try:
            models[name] = loader.model(name)
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem(f"models.{name}", _one_line(exc).replace(f"model '{name}': ", "")))

    for model_name, dataset_names in _gated_on(settings).items():
        model = models.get(model_name)
        if model is None:
            continue
        for dataset_name in sorted(dataset_names):
            dataset = datasets.get(dataset_name)
            if dataset is None:
                continue
            shape = settings.models[model_name].input_shape or tuple(dataset.image_shape)
            try:
                check_output_width(model, dataset.num_classes, shape, dataset=dataset_name)
            except Exception as exc:  # noqa: BLE001
                problems.append(Problem(f"models.{model_name}", _one_line(exc)))
    return problems


def problems_text(settings: Settings, problems: list[Problem]) -> str:
    """The report: a count line naming the file, then one indented line per problem."""
    noun = "problem" if len(problems) == 1 else "problems"
    lines = [f"{settings.source}: {len(problems)} {noun} found by the deep check:"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)
