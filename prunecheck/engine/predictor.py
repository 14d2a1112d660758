"""The prediction engine: class probabilities of models on dataset views.

Every (leaf model, dataset, passes) is predicted once and cached on disk
(:mod:`prunecheck.engine.cache`), keyed by the model's weight fingerprint, the dataset
fingerprint, the engine version and whatever else changes the numbers. The engine does
not interpret views: a view is a dataset of its own (:func:`prunecheck.data.views.apply_view`),
whose fingerprint names it and whose ``batch_transform`` the engine applies to every
normalised batch on the device (the identity, except for noise).
Ensembles are combined from their members' cached predictions, so a parent that
is also an ensemble member is predicted once. All models that miss the cache are
evaluated on each batch once it has been loaded and normalised.

Speed (docs/performance.md): batches travel as uint8 and are normalised on the
evaluation device; the next batch is loaded (decoded, corrupted view read) in a
background thread while the models run on the current one; optional
channels-last memory format and bf16/fp16 autocast (``precision``, part of the
cache key when not fp32). Two processes (pytest-xdist workers) never compute the
same entry: each cache key is computed under an exclusive file lock, and a
process that finds the lock taken waits and then reads the entry.

Predictions are stored as per-member (or per-MC-pass) log-probabilities
[M, N, C] in float32: exact (no underflow to log 0), and enough to build both
ensemble variants (mean of probabilities, or softmax of mean logits: softmax is
shift-invariant per row, so mean log-softmax gives the same result). A caller
that needs no rows (``rows=False``: accuracy-type gates) gets per-sample
summaries instead (:mod:`prunecheck.engine.predictions`), 28 bytes per image; MC passes
and ensemble members always keep their rows. An entry with rows serves a
summaries request too; a summaries entry asked for rows is recomputed with rows.

Sharding (``shard=(i, n)``, ``prunecheck predict --shard``): each missing entry
is computed for the i-th of n batch-aligned row ranges only and stored as a part
entry; whichever shard finds all n parts assembles the full entry. Batches keep
their absolute row positions and index, so noise views and MC dropout draw the same
numbers as unsharded.
While sharding, predict calls return placeholders (uniform probabilities) for
entries not complete yet: the suites run only to name what they need.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from prunecheck import ENGINE_VERSION
from prunecheck.core.errors import ModelError
from prunecheck.core.io import cache_key, derived_seed, file_lock
from prunecheck.data.base import ImageDataset, normaliser
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictions import SUMMARY_FIELDS, Predictions, PredictionSummary
from prunecheck.nn.layers import is_dropout  # the predicate LoadedModel.has_dropout uses
from prunecheck.nn.models import LoadedModel

if TYPE_CHECKING:  # the remote backend imports fsspec
    from prunecheck.engine.remote import FsspecArrayCache

#: The slot of the cache key that held the view's key before views became datasets of their
#: own (their fingerprint names them now). It keeps the nominal view's key, so entries cached
#: before stay valid; noise entries were re-keyed (their dataset fingerprint is new).
_FORMER_VIEW_SLOT = "nominal||0|0.0|0|0.0"
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
Progress = Callable[[str], None]


def resolve_device(device: str) -> torch.device:
    """'auto' picks the first CUDA device when one is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def key_lock(cache: ArrayCache, key: str, *, blocking: bool = True):
    """Exclusive advisory lock on ``<cache.lock_dir>/<key>.lock`` (:func:`prunecheck.core.io.file_lock`).

    The lock folder is the cache's own: ``<root>/locks`` for a local cache, a local
    folder per URL for a remote one. Yields True when the lock is held, False when
    ``blocking`` is off and another process holds it. Without ``fcntl`` (non-POSIX)
    it always yields True.
    """
    with file_lock(Path(cache.lock_dir) / f"{key}.lock", blocking=blocking) as held:
        yield held


def _set_mc_dropout(module: torch.nn.Module, enabled: bool) -> None:
    """Dropout modules only: train mode when enabled; BatchNorm and the rest stay in eval.

    Uses the predicate of ``LoadedModel.has_dropout``, so scripted dropout
    submodules (TorchScript) are switched too, not only Python ``_DropoutNd``.
    """
    module.eval()
    if enabled:
        for sub in module.modules():
            if is_dropout(sub):
                sub.train()


@dataclass(frozen=True)
class _Request:
    """What one ``predict_many`` call asks of the cache entries it misses."""

    dataset: ImageDataset
    mc_passes: int
    width: int  # the models' output width
    need_rows: dict[str, bool]  # per cache key: class probabilities, or per-sample summaries suffice

    @property
    def passes(self) -> int:
        return max(1, self.mc_passes)

    def fits(self, key: str, entry: dict[str, np.ndarray], n: int | None = None) -> bool:
        """Whether ``entry`` holds what ``key`` needs for ``n`` rows (default: all): rows
        [passes, n, width], or n summaries when rows are not needed."""
        n = len(self.dataset) if n is None else n
        log_probs = entry.get("log_probs")
        if log_probs is not None:
            return log_probs.ndim == 3 and tuple(log_probs.shape) == (self.passes, n, self.width)
        return not self.need_rows[key] and all(
            name in entry and entry[name].shape == (n,) and entry[name].dtype == dtype
            for name, dtype in SUMMARY_FIELDS.items()
        )


class PredictionEngine:
    """Predicts models on datasets, batched, cached; counts forward passes for tests.

    Args:
        cache: where predictions are stored.
        device: "auto", "cpu", "cuda", "cuda:N".
        batch_size: images per batch.
        seed: seed of MC dropout (noise views carry their own: ``prunecheck.data.views``).
        progress: called with one line of text for long work.
        channels_last: run models and batches in channels-last memory format.
        precision: "fp32" (default), "bf16" or "fp16" autocast for the forward passes;
            log-probabilities are computed from float32 logits either way.
        prefetch: load the next batch in a background thread while the models run.
            None (default): on for CUDA devices, and on the CPU when torch leaves cores
            free for it (``torch.get_num_threads() < os.cpu_count()``); otherwise the
            loader would only compete with the forward passes for the same cores.
        shard: (i, n) to compute only the i-th of n row parts of missing entries
            (``prunecheck predict --shard``); None (default) computes whole entries.
    """

    def __init__(
        self,
        cache: "ArrayCache | FsspecArrayCache",
        *,
        device: str = "cpu",
        batch_size: int = 256,
        seed: int = 0,
        progress: Progress | None = None,
        channels_last: bool = False,
        precision: str = "fp32",
        prefetch: bool | None = None,
        shard: tuple[int, int] | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, found {precision!r}")
        self.cache = cache
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.progress = progress or (lambda message: None)
        self.channels_last = bool(channels_last)
        self.precision = precision
        if prefetch is None:
            prefetch = self.device.type == "cuda" or torch.get_num_threads() < (os.cpu_count() or 1)
        self.prefetch = bool(prefetch)
        self.forward_passes = 0  # one per leaf model per batch per MC pass
        self.computed: list[str] = []  # cache keys this engine computed (not read), in order
        self._seen: dict[str, object] = {}
        if shard is not None and not (0 <= shard[0] < shard[1]):
            raise ValueError(f"shard: expected (i, n) with 0 <= i < n, found {shard!r}")
        self.shard = shard

    # -- public -------------------------------------------------------------------
    def predict(
        self,
        model: LoadedModel,
        dataset: ImageDataset,
        *,
        mc_passes: int = 0,
        num_classes: int | None = None,
        rows: bool = True,
    ) -> Predictions:
        return self.predict_many([model], dataset, mc_passes=mc_passes, num_classes=num_classes, rows=rows)[0]

    def predict_many(
        self,
        models: Sequence[LoadedModel],
        dataset: ImageDataset,
        *,
        mc_passes: int = 0,
        num_classes: int | None = None,
        rows: bool = True,
    ) -> list[Predictions]:
        """Predictions for each model on ``dataset``; uncached leaf models share every loaded batch.

        ``dataset`` is a view of the data already (:func:`prunecheck.data.views.apply_view`);
        the predictions record its ``view``. ``num_classes`` is the models' output width when
        it differs from the dataset's (out-of-distribution data: CIFAR-100 images shown to a
        CIFAR-10 model). ``rows=False``: the caller needs only per-sample summaries
        (accuracy, ECE, AUSE, NLL, Brier, entropy); plain models are then stored compact.
        MC passes, ensembles and labels outside the output width keep rows.
        """
        width = int(num_classes or dataset.num_classes)
        labels = dataset.labels
        compact_ok = (
            not rows and not mc_passes and len(labels) > 0
            and int(labels.min()) >= 0 and int(labels.max()) < width
        )
        leaves: dict[str, LoadedModel] = {}
        need_rows: dict[str, bool] = {}
        for model in models:
            for leaf in self._leaves(model):
                key = self._key(leaf, dataset, mc_passes)
                leaves.setdefault(key, leaf)
                need_rows[key] = need_rows.get(key, False) or not compact_ok or model.is_ensemble
        request = _Request(dataset, mc_passes, width, need_rows)
        found: dict[str, dict[str, np.ndarray]] = {}
        missing: dict[str, LoadedModel] = {}
        self._seen: dict[str, tuple[int, int] | None] = {}
        for key, leaf in leaves.items():
            self._seen[key] = self.cache.signature(key)  # what the miss was based on
            entry = self.cache.get(key)
            if entry is not None and request.fits(key, entry):
                found[key] = entry
            else:
                missing[key] = leaf
        if missing:
            compute = self._compute_shard if self.shard is not None else self._compute_locked
            found.update(compute(missing, request))
        results = []
        for model in models:
            entries = [found[self._key(leaf, dataset, mc_passes)] for leaf in self._leaves(model)]
            if "log_probs" in entries[0]:
                log_probs, compact = torch.cat([torch.from_numpy(e["log_probs"]) for e in entries], dim=0), None
            else:
                log_probs, compact = None, PredictionSummary.from_arrays(entries[0])
            results.append(
                Predictions(
                    model=model.name,
                    dataset=dataset.name,
                    view=dataset.view,
                    log_probs=log_probs,
                    labels=labels,
                    average=model.spec.ensemble_average,
                    mc_passes=mc_passes,
                    compact=compact,
                    classes=tuple(dataset.classes) if dataset.classes is not None else None,
                )
            )
        return results

    # -- internals ----------------------------------------------------------------
    @staticmethod
    def _leaves(model: LoadedModel) -> tuple[LoadedModel, ...]:
        return model.members if model.is_ensemble else (model,)

    def _key(self, leaf: LoadedModel, dataset: ImageDataset, mc_passes: int) -> str:
        stochastic_seed = self.seed if mc_passes else None
        # Dropout masks are drawn per batch tensor, so MC results depend on the batching.
        batching = self.batch_size if mc_passes else None
        # Reduced precision changes the numbers; fp32 keeps the keys of earlier versions.
        extra = () if self.precision == "fp32" else (("precision", self.precision),)
        return cache_key(
            "predictions", ENGINE_VERSION, leaf.fingerprint, dataset.fingerprint(), _FORMER_VIEW_SLOT,
            mc_passes, stochastic_seed, batching, *extra,
        )

    def _fresh_entry(self, key: str, request: _Request) -> dict[str, np.ndarray] | None:
        """The entry if another process wrote it since this one missed it, else None."""
        signature = self.cache.signature(key)
        if signature is None or signature == self._seen.get(key):
            return None  # unchanged since the miss: reading it again would only recount the miss
        self._seen[key] = signature
        entry = self.cache.get(key)
        if entry is not None and request.fits(key, entry):
            return entry
        return None

    def _compute_locked(self, missing: dict[str, LoadedModel], request: _Request) -> dict[str, dict[str, np.ndarray]]:
        """Compute the missing entries, each under its key's file lock.

        Keys whose lock is free are taken, re-checked (another process may have
        just written them) and computed together in one pass. Keys locked by
        another process are waited for afterwards, holding no lock meanwhile (so
        two processes never wait on each other), and read; an entry still missing
        then (its owner crashed) is computed here.
        """
        found: dict[str, dict[str, np.ndarray]] = {}
        busy: list[str] = []
        with contextlib.ExitStack() as held:
            mine: dict[str, LoadedModel] = {}
            for key, leaf in missing.items():
                if held.enter_context(key_lock(self.cache, key, blocking=False)):
                    entry = self._fresh_entry(key, request)
                    if entry is not None:
                        found[key] = entry
                    else:
                        mine[key] = leaf
                else:
                    busy.append(key)
            if mine:
                computed = self._run(mine, request, (0, len(request.dataset)))
                for key, arrays in computed.items():
                    self.cache.put(key, arrays)
                    self.computed.append(key)
                found.update(computed)
        still_missing: dict[str, LoadedModel] = {}
        for key in busy:
            with key_lock(self.cache, key):  # wait for the other process to finish
                entry = self._fresh_entry(key, request)
            if entry is not None:
                found[key] = entry
            else:
                still_missing[key] = missing[key]
        if still_missing:
            found.update(self._compute_locked(still_missing, request))
        return found

    def shard_rows(self, n: int) -> tuple[int, int]:
        """Rows [start, stop) of this engine's shard: the i-th of n runs of whole batches."""
        index, count = self.shard
        batches = -(-n // self.batch_size)
        first, last = index * batches // count, (index + 1) * batches // count
        return min(first * self.batch_size, n), min(last * self.batch_size, n)

    def _compute_shard(self, missing: dict[str, LoadedModel], request: _Request) -> dict[str, dict[str, np.ndarray]]:
        """This shard's part of each missing entry; full entries once all parts exist, else placeholders."""
        index, count = self.shard
        n = len(request.dataset)
        start, stop = self.shard_rows(n)
        mine: dict[str, LoadedModel] = {}
        for key, leaf in missing.items():
            part = self.cache.get(part_key(key, index, count))
            if part is None or not request.fits(key, part, stop - start):
                mine[key] = leaf
        if mine:  # an empty range still writes its (empty) part, so the others can assemble
            for key, arrays in self._run(mine, request, (start, stop)).items():
                self.cache.put(part_key(key, index, count), arrays)
                self.computed.append(part_key(key, index, count))
        found: dict[str, dict[str, np.ndarray]] = {}
        for key in missing:
            entry = self._assemble(key, request)
            found[key] = entry if entry is not None else _placeholder(n, request.width, request.passes,
                                                                      request.need_rows[key])
        return found

    def _assemble(self, key: str, request: _Request) -> dict[str, np.ndarray] | None:
        """The full entry from all parts of ``key`` (then stored, parts removed), or None while some are missing."""
        index, count = self.shard
        parts = []
        for other in range(count):
            entry = self.cache.get(part_key(key, other, count))
            if entry is None:
                return None
            parts.append(entry)
        if "log_probs" in parts[0]:
            if not all("log_probs" in part for part in parts):
                return None
            entry = {"log_probs": np.concatenate([part["log_probs"] for part in parts], axis=1)}
        else:
            entry = {name: np.concatenate([part[name] for part in parts]) for name in SUMMARY_FIELDS}
        if not request.fits(key, entry):
            return None
        self.cache.put(key, entry)
        for other in range(count):
            self.cache.delete(part_key(key, other, count))
        return entry

    def _run(
        self, missing: dict[str, LoadedModel], request: _Request, rows_range: tuple[int, int]
    ) -> dict[str, dict[str, np.ndarray]]:
        """Entries (rows or summaries) of the missing keys for dataset rows ``rows_range``."""
        from prunecheck.core.progress import task

        dataset, mc_passes, width, need_rows = request.dataset, request.mc_passes, request.width, request.need_rows
        first, end = rows_range
        n = end - first
        names = ", ".join(leaf.name for leaf in missing.values())
        part = f", rows {first}:{end} of {len(dataset)}" if n != len(dataset) else ""
        label = f"{names} on {dataset.name} [{dataset.view.id}]" + (f" x{mc_passes} MC" if mc_passes else "")
        job = task(self.progress, label, n, start_line=f"predicting {label} ({n} images{part}, {self.device})")
        passes = request.passes
        outputs: dict[str, dict[str, np.ndarray]] = {
            key: (
                {"log_probs": np.empty((passes, n, width), dtype=np.float32)}
                if need_rows[key]
                else {name: np.empty(n, dtype=dtype) for name, dtype in SUMMARY_FIELDS.items()}
            )
            for key in missing
        }
        labels = dataset.labels
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        modules = {key: leaf.module.to(self.device, memory_format=memory_format) for key, leaf in missing.items()}
        for module in modules.values():
            _set_mc_dropout(module, enabled=mc_passes > 0)
        normalise = normaliser(dataset.mean, dataset.std, self.device)
        pin = self.device.type == "cuda"

        def load(start: int) -> torch.Tensor:
            images = dataset.images(np.arange(start, min(start + self.batch_size, end)))
            return images.pin_memory() if pin else images

        starts = list(range(first, end, self.batch_size))
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prunecheck-prefetch") if self.prefetch else None
        try:
            pending = loader.submit(load, starts[0]) if (loader and starts) else None
            with torch.inference_mode():
                for position, start in enumerate(starts):
                    stop = min(start + self.batch_size, end)
                    batch_index = start // self.batch_size  # absolute: MC seeds do not depend on the shard
                    if loader is not None:
                        host = pending.result()
                        if position + 1 < len(starts):  # load the next batch while the models run
                            pending = loader.submit(load, starts[position + 1])
                    else:
                        host = load(start)
                    x = normalise(host.to(self.device, non_blocking=True))  # on the device
                    x = dataset.batch_transform(x, start, stop)  # a view acting in normalised space (noise)
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    rows = slice(start - first, stop - first)
                    for key, module in modules.items():
                        for mc_pass in range(passes):
                            log_probs = self._forward(module, x, missing[key], request, mc_pass, batch_index)
                            if need_rows[key]:
                                outputs[key]["log_probs"][mc_pass, rows] = log_probs
                            else:
                                summary = PredictionSummary.from_probs(
                                    torch.from_numpy(log_probs).exp(), labels[start:stop]
                                ).arrays()
                                for name, values in summary.items():
                                    outputs[key][name][rows] = values
                    job.update(stop - first)
        finally:
            if loader is not None:
                loader.shutdown(wait=True, cancel_futures=True)
            for module in modules.values():
                _set_mc_dropout(module, enabled=False)
                module.to("cpu", memory_format=torch.contiguous_format)
        job.close()
        return outputs

    def _forward(
        self,
        module: torch.nn.Module,
        x: torch.Tensor,
        leaf: LoadedModel,
        request: _Request,
        mc_pass: int,
        batch_index: int,
    ) -> np.ndarray:
        dataset, width, mc_passes = request.dataset, request.width, request.mc_passes
        self.forward_passes += 1
        dtype = PRECISIONS[self.precision]
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            if mc_passes:
                devices = [self.device] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(derived_seed("mc", self.seed, mc_pass, batch_index))
                    logits = module(x)
            else:
                logits = module(x)
        if logits.ndim != 2 or logits.shape[1] != width:
            raise ModelError(
                f"model '{leaf.name}' outputs shape {tuple(logits.shape)} on a batch of "
                f"{x.shape[0]} from dataset '{dataset.name}', expected [{x.shape[0]}, {width}]"
                + (f" (the dataset has {width} classes)" if width == dataset.num_classes else "")
            )
        return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()


def part_key(key: str, index: int, count: int) -> str:
    """Cache key of the ``index``-th of ``count`` row parts of entry ``key``."""
    return cache_key("part", key, index, count)


def _placeholder(n: int, width: int, passes: int, rows: bool) -> dict[str, np.ndarray]:
    """Uniform probabilities standing in for an entry other shards have not finished."""
    if rows:
        return {"log_probs": np.full((passes, n, width), -np.log(width), dtype=np.float32)}
    uniform = 1.0 / width
    return {
        "predicted": np.zeros(n, np.int32), "confidence": np.full(n, uniform, np.float32),
        "label_prob": np.full(n, uniform, np.float32), "entropy": np.full(n, np.log(width)),
        "sum_sq": np.full(n, uniform),
    }
