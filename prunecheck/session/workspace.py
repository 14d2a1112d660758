"""Resolves the names in the settings to loaded datasets, models and predictions.

One Workspace lives for a pytest session. It memoises what it loads, gets every
view of a dataset from :func:`prunecheck.data.views.apply_view`, and hands
prediction work to the engine, which owns batching and the cache. The values the
suites' ``pair`` and ``family`` fixtures hand out are in :mod:`prunecheck.session.pairs`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from prunecheck.config.settings import PairSpec, Settings
from prunecheck.core.errors import ConfigError, PrunecheckError
from prunecheck.core.io import cache_key
from prunecheck.core.views import NOMINAL, View
from prunecheck.data.base import ImageDataset
from prunecheck.data.registry import load_dataset
from prunecheck.data.views import apply_view, view_source
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictor import PredictionEngine, Predictions, Progress
from prunecheck.engine.remote import open_cache
from prunecheck.nn.efficiency import EfficiencyFacts, efficiency_facts
from prunecheck.nn.models import LoadedModel, load_model

#: View kinds whose predictions feed accuracy-type gates only (corruption margin, prune
#: potential, excess error): stored as per-sample summaries, not rows (prunecheck.engine.predictions).
SUMMARY_VIEW_KINDS = ("corruption",)


class Workspace:
    """Datasets, models and predictions of one run, loaded on first use."""

    def __init__(self, settings: Settings, *, progress: Progress | None = None):
        self.settings = settings
        self.progress = progress or (lambda message: None)
        run = settings.run
        self.engine = PredictionEngine(
            open_cache(run.prediction_cache or run.cache_dir / "predictions"),
            device=run.device,
            batch_size=run.batch_size,
            seed=run.seed,
            progress=self.progress,
            channels_last=run.channels_last,
            precision=run.precision,
        )
        self._datasets: dict[tuple[str, View], ImageDataset] = {}
        self._models: dict[str, LoadedModel] = {}
        self._facts: dict[tuple[str, tuple[int, ...]], EfficiencyFacts] = {}
        self._facts_cache = ArrayCache(run.cache_dir / "efficiency")
        # what could not be loaded: its full reason is reported once, at the first test that
        # needed it; later tests get a one-line pointer instead of the same error again
        self._failed: dict[tuple[str, str], type[PrunecheckError]] = {}

    def _load_once(self, kind: str, name: str, load):
        if (kind, name) in self._failed:
            raise self._failed[(kind, name)](
                f"{kind} '{name}' could not be loaded; the reason is reported once, at the first test that used it"
            )
        try:
            return load()
        except PrunecheckError as exc:
            self._failed[(kind, name)] = type(exc)
            raise

    # -- datasets -----------------------------------------------------------------
    def dataset(self, name: str, view: View = NOMINAL) -> ImageDataset:
        """The dataset ``name`` under ``view`` (:func:`prunecheck.data.views.apply_view`), memoised."""
        key = (name, view)
        if key not in self._datasets:
            self._datasets[key] = self._load_once("dataset", name, lambda: self._load_dataset(name, view))
        return self._datasets[key]

    def _load_dataset(self, name: str, view: View) -> ImageDataset:
        spec = self._spec("datasets", self.settings.datasets, name)
        run = self.settings.run
        if view == NOMINAL:
            return load_dataset(spec, limit=run.limit, seed=run.seed)
        return apply_view(
            self.dataset(name), view, seed=run.seed, spec=spec, cache_dir=run.cache_dir / "corruptions",
            backend=run.corruption_backend, limit=run.limit, device=self.engine.device, progress=self.progress,
        )

    def view_source(self, name: str, view: View) -> str:
        """Where the images of dataset ``name`` under ``view`` come from, for the report
        (:func:`prunecheck.data.views.view_source`)."""
        if view == NOMINAL:
            return ""
        return view_source(self.dataset(name, view), self._spec("datasets", self.settings.datasets, name))

    # -- models -------------------------------------------------------------------
    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            spec = self._spec("models", self.settings.models, name)
            self._models[name] = self._load_once("model", name, lambda: load_model(spec, self.settings.models))
        return self._models[name]

    def facts(self, model_name: str, dataset_name: str) -> EfficiencyFacts:
        model = self.model(model_name)
        shape = model.spec.input_shape or tuple(self.dataset(dataset_name).image_shape)
        key = (model_name, tuple(shape))
        if key not in self._facts:
            self._facts[key] = self._cached_facts(model, tuple(shape))
        return self._facts[key]

    def _cached_facts(self, model: LoadedModel, shape: tuple[int, ...]) -> EfficiencyFacts:
        """Efficiency facts from the cache, keyed like predictions by the weight fingerprint.

        Compressing a large state dict costs seconds per model; a warm run reads the
        figures back instead. A damaged or outdated entry is recomputed.
        """
        import numpy as np
        import torch

        from prunecheck.nn.efficiency import ZLIB_LEVEL

        names = tuple(f.name for f in dataclasses.fields(EfficiencyFacts))
        # torch's version: torch.save's format (raw and zipped bytes) and the FLOP counter's formulas
        key = cache_key("efficiency-facts-v1", model.fingerprint, shape, ZLIB_LEVEL, torch.__version__, names)
        stored = self._facts_cache.get(key)
        if stored is not None and set(stored) == set(names):
            return EfficiencyFacts(**{name: stored[name].item() for name in names})
        facts = efficiency_facts(model, shape)  # ensembles: summed over members
        self._facts_cache.put(key, {name: np.asarray(getattr(facts, name)) for name in names})
        return facts

    # -- predictions --------------------------------------------------------------
    def predict(
        self,
        model_name: str,
        dataset_name: str,
        view: View = NOMINAL,
        *,
        mc_passes: int = 0,
        num_classes: int | None = None,
        rows: bool | None = None,
    ) -> Predictions:
        return self.predict_many(
            [model_name], dataset_name, view, mc_passes=mc_passes, num_classes=num_classes, rows=rows
        )[0]

    def predict_many(
        self,
        model_names: Sequence[str],
        dataset_name: str,
        view: View = NOMINAL,
        *,
        mc_passes: int = 0,
        num_classes: int | None = None,
        rows: bool | None = None,
    ) -> list[Predictions]:
        """Predictions of the models on one dataset view; ``num_classes`` is the models'
        output width when the dataset is out-of-distribution with another class count.

        ``rows``: whether class probabilities are needed; None (default) decides by the
        view: corruption views get per-sample summaries (:data:`SUMMARY_VIEW_KINDS`).
        """
        models = [self.model(name) for name in model_names]
        return self.engine.predict_many(
            models, self.dataset(dataset_name, view), mc_passes=mc_passes, num_classes=num_classes,
            rows=view.kind not in SUMMARY_VIEW_KINDS if rows is None else rows,
        )

    def predict_pair(
        self, spec: PairSpec, view: View = NOMINAL, *, mc_passes: int = 0, dataset: str | None = None,
        rows: bool | None = None,
    ) -> tuple[Predictions, Predictions]:
        """(parent, pruned) predictions of pair ``spec`` on its dataset (or ``dataset``) under ``view``.

        On another dataset (OOD data) the models keep the pair dataset's output width.
        """
        width = None
        if dataset is not None and dataset != spec.dataset:
            width = self.dataset(spec.dataset).num_classes
        parent, pruned = self.predict_many(
            [spec.parent, spec.pruned], dataset or spec.dataset, view, mc_passes=mc_passes, num_classes=width, rows=rows,
        )
        return parent, pruned

    def _spec(self, table: str, specs: dict, name: str):
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise ConfigError(f"unknown {table[:-1]} '{name}' (known: {known})", source=self.settings.source, key=table)
        return specs[name]

