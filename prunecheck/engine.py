"""The prediction engine: class probabilities of models on dataset views.

Every (leaf model, dataset, view, passes) is predicted once and cached on disk
(:mod:`prunecheck.cache`), keyed by the model's weight fingerprint, the dataset
fingerprint, the view, the engine version and whatever else changes the numbers.
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
shift-invariant per row, so mean log-softmax gives the same result).
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from functools import cached_property
from typing import Callable, Sequence

import numpy as np
import torch

from prunecheck import ENGINE_VERSION
from prunecheck.cache import ArrayCache, cache_key
from prunecheck.data.base import ImageDataset
from prunecheck.errors import ModelError
from prunecheck.models import LoadedModel
from prunecheck.models import _is_dropout as is_dropout  # the one predicate LoadedModel.has_dropout uses
from prunecheck.views import NOMINAL, View

NOISE_BLOCK = 64  # noise is drawn per block of rows, so it does not depend on the batch size
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predictions of one model (single, ensemble, or MC dropout) on one view.

    Attributes:
        log_probs: float32 [M, N, C]; M = members x MC passes (1 for a plain model).
        labels: int64 [N].
        average: how members combine: "probs" (mean of probabilities) or "logits".
    """

    model: str
    dataset: str
    view: View
    log_probs: torch.Tensor
    labels: torch.Tensor
    average: str = "probs"
    mc_passes: int = 0

    @cached_property
    def member_probs(self) -> torch.Tensor:
        """float32 [M, N, C] probabilities of each member / pass."""
        return self.log_probs.exp()

    @cached_property
    def probs(self) -> torch.Tensor:
        """float32 [N, C] combined class probabilities."""
        if self.log_probs.shape[0] == 1:
            return self.member_probs[0]
        if self.average == "logits":
            return torch.softmax(self.log_probs.mean(dim=0), dim=-1)
        return self.member_probs.mean(dim=0)

    @property
    def num_members(self) -> int:
        return int(self.log_probs.shape[0])


def resolve_device(device: str) -> torch.device:
    """'auto' picks the first CUDA device when one is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def key_lock(cache: ArrayCache, key: str, *, blocking: bool = True):
    """Exclusive advisory lock (``fcntl.flock``) on ``<cache>/locks/<key>.lock``.

    Yields True when the lock is held, False when ``blocking`` is off and another
    process holds it. Without ``fcntl`` (non-POSIX) it always yields True.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
        yield True
        return
    path = Path(cache.root) / "locks" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _seed_for(*parts: object) -> int:
    return int(cache_key(*parts)[:15], 16)


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


class PredictionEngine:
    """Predicts models on datasets, batched, cached; counts forward passes for tests.

    Args:
        cache: where predictions are stored.
        device: "auto", "cpu", "cuda", "cuda:N".
        batch_size: images per batch.
        seed: seed of noise views and MC dropout.
        progress: called with one line of text for long work.
        channels_last: run models and batches in channels-last memory format.
        precision: "fp32" (default), "bf16" or "fp16" autocast for the forward passes;
            log-probabilities are computed from float32 logits either way.
        prefetch: load the next batch in a background thread while the models run.
            None (default): on for CUDA devices, and on the CPU when torch leaves cores
            free for it (``torch.get_num_threads() < os.cpu_count()``); otherwise the
            loader would only compete with the forward passes for the same cores.
    """

    def __init__(
        self,
        cache: ArrayCache,
        *,
        device: str = "cpu",
        batch_size: int = 256,
        seed: int = 0,
        progress: Progress | None = None,
        channels_last: bool = False,
        precision: str = "fp32",
        prefetch: bool | None = None,
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
        self._view_label: str | None = None
        self.computed: list[str] = []  # cache keys this engine computed (not read), in order
        self._seen: dict[str, tuple[int, int] | None] = {}

    # -- public -------------------------------------------------------------------
    def predict(
        self,
        model: LoadedModel,
        dataset: ImageDataset,
        view: View = NOMINAL,
        *,
        mc_passes: int = 0,
        num_classes: int | None = None,
    ) -> Predictions:
        return self.predict_many([model], dataset, view, mc_passes=mc_passes, num_classes=num_classes)[0]

    def predict_many(
        self,
        models: Sequence[LoadedModel],
        dataset: ImageDataset,
        view: View = NOMINAL,
        *,
        mc_passes: int = 0,
        num_classes: int | None = None,
        label: str | None = None,
    ) -> list[Predictions]:
        """Predictions for each model; uncached leaf models share every loaded batch.

        ``num_classes`` is the models' output width when it differs from the
        dataset's (out-of-distribution data: CIFAR-100 images shown to a CIFAR-10 model).
        ``label`` names the view in progress output when ``dataset`` already is a
        pixel view (a corruption): the engine itself sees it as nominal data.
        """
        self._view_label = label
        width = int(num_classes or dataset.num_classes)
        if view.changes_pixels:
            # Pixel views are datasets of their own (see prunecheck.workspace).
            raise ValueError(f"view {view.id} must be applied to the dataset before prediction")
        leaves: dict[str, LoadedModel] = {}
        for model in models:
            for leaf in self._leaves(model):
                leaves.setdefault(self._key(leaf, dataset, view, mc_passes), leaf)
        found: dict[str, np.ndarray] = {}
        missing: dict[str, LoadedModel] = {}
        self._seen: dict[str, tuple[int, int] | None] = {}
        for key, leaf in leaves.items():
            self._seen[key] = self._signature(key)  # what the miss was based on
            entry = self.cache.get(key)
            if entry is not None and self._entry_fits(entry, dataset, mc_passes, width):
                found[key] = entry["log_probs"]
            else:
                missing[key] = leaf
        if missing:
            found.update(self._compute_locked(missing, dataset, view, mc_passes, width))
        labels = dataset.labels
        results = []
        for model in models:
            parts = [torch.from_numpy(found[self._key(leaf, dataset, view, mc_passes)]) for leaf in self._leaves(model)]
            results.append(
                Predictions(
                    model=model.name,
                    dataset=dataset.name,
                    view=view,
                    log_probs=torch.cat(parts, dim=0),
                    labels=labels,
                    average=model.spec.ensemble_average,
                    mc_passes=mc_passes,
                )
            )
        return results

    # -- internals ----------------------------------------------------------------
    @staticmethod
    def _leaves(model: LoadedModel) -> tuple[LoadedModel, ...]:
        return model.members if model.is_ensemble else (model,)

    def _key(self, leaf: LoadedModel, dataset: ImageDataset, view: View, mc_passes: int) -> str:
        stochastic_seed = self.seed if (view.kind == "noise" or mc_passes) else None
        # Dropout masks are drawn per batch tensor, so MC results depend on the batching.
        batching = self.batch_size if mc_passes else None
        # Reduced precision changes the numbers; fp32 keeps the keys of earlier versions.
        extra = () if self.precision == "fp32" else (("precision", self.precision),)
        return cache_key(
            "predictions", ENGINE_VERSION, leaf.fingerprint, dataset.fingerprint(), view.key,
            mc_passes, stochastic_seed, batching, *extra,
        )

    def _signature(self, key: str) -> tuple[int, int] | None:
        """(mtime_ns, size) of the entry's file, or None when there is none."""
        try:
            stat = self.cache.path(key).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _fresh_entry(self, key: str, dataset: ImageDataset, mc_passes: int, width: int) -> np.ndarray | None:
        """The entry if another process wrote it since this one missed it, else None."""
        signature = self._signature(key)
        if signature is None or signature == self._seen.get(key):
            return None  # unchanged since the miss: reading it again would only recount the miss
        self._seen[key] = signature
        entry = self.cache.get(key)
        if entry is not None and self._entry_fits(entry, dataset, mc_passes, width):
            return entry["log_probs"]
        return None

    def _compute_locked(
        self, missing: dict[str, LoadedModel], dataset: ImageDataset, view: View, mc_passes: int, width: int
    ) -> dict[str, np.ndarray]:
        """Compute the missing entries, each under its key's file lock.

        Keys whose lock is free are taken, re-checked (another process may have
        just written them) and computed together in one pass. Keys locked by
        another process are waited for afterwards, holding no lock meanwhile (so
        two processes never wait on each other), and read; an entry still missing
        then (its owner crashed) is computed here.
        """
        found: dict[str, np.ndarray] = {}
        busy: list[str] = []
        with contextlib.ExitStack() as held:
            mine: dict[str, LoadedModel] = {}
            for key, leaf in missing.items():
                if held.enter_context(key_lock(self.cache, key, blocking=False)):
                    entry = self._fresh_entry(key, dataset, mc_passes, width)
                    if entry is not None:
                        found[key] = entry
                    else:
                        mine[key] = leaf
                else:
                    busy.append(key)
            if mine:
                found.update(self._run(mine, dataset, view, mc_passes, width))
        still_missing: dict[str, LoadedModel] = {}
        for key in busy:
            with key_lock(self.cache, key):  # wait for the other process to finish
                entry = self._fresh_entry(key, dataset, mc_passes, width)
            if entry is not None:
                found[key] = entry
            else:
                still_missing[key] = missing[key]
        if still_missing:
            found.update(self._compute_locked(still_missing, dataset, view, mc_passes, width))
        return found

    @staticmethod
    def _entry_fits(entry: dict[str, np.ndarray], dataset: ImageDataset, mc_passes: int, width: int) -> bool:
        log_probs = entry.get("log_probs")
        return (
            log_probs is not None
            and log_probs.ndim == 3
            and log_probs.shape[0] == max(1, mc_passes)
            and log_probs.shape[1] == len(dataset)
            and log_probs.shape[2] == width
        )

    def _normaliser(self, dataset: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(dataset.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(dataset.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        return mean, std

    def _noise(self, view: View, start: int, stop: int, shape: tuple[int, ...]) -> torch.Tensor:
        """U(-eps, eps) for rows [start, stop), drawn per fixed block of rows."""
        first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
        blocks = []
        for block in range(first, last + 1):
            generator = torch.Generator().manual_seed(_seed_for("noise", self.seed, view.key, block))
            blocks.append(torch.rand((NOISE_BLOCK, *shape), generator=generator))
        noise = torch.cat(blocks)[start - first * NOISE_BLOCK : stop - first * NOISE_BLOCK]
        return ((noise * 2.0 - 1.0) * view.eps).to(self.device)

    def _run(
        self, missing: dict[str, LoadedModel], dataset: ImageDataset, view: View, mc_passes: int, width: int
    ) -> dict[str, np.ndarray]:
        from prunecheck.progress import task

        n = len(dataset)
        names = ", ".join(leaf.name for leaf in missing.values())
        label = f"{names} on {dataset.name} [{self._view_label or view.id}]" + (f" x{mc_passes} MC" if mc_passes else "")
        job = task(self.progress, label, n, start_line=f"predicting {label} ({n} images, {self.device})")
        passes = max(1, mc_passes)
        outputs = {
            key: np.empty((passes, n, width), dtype=np.float32) for key in missing
        }
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        modules = {key: leaf.module.to(self.device, memory_format=memory_format) for key, leaf in missing.items()}
        for module in modules.values():
            _set_mc_dropout(module, enabled=mc_passes > 0)
        mean, std = self._normaliser(dataset)
        scale, shift = 1.0 / (255.0 * std), -mean / std
        pin = self.device.type == "cuda"

        def load(start: int) -> torch.Tensor:
            images = dataset.images(np.arange(start, min(start + self.batch_size, n)))
            return images.pin_memory() if pin else images

        starts = list(range(0, n, self.batch_size))
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prunecheck-prefetch") if self.prefetch else None
        try:
            pending = loader.submit(load, starts[0]) if (loader and starts) else None
            with torch.inference_mode():
                for batch_index, start in enumerate(starts):
                    stop = min(start + self.batch_size, n)
                    if loader is not None:
                        host = pending.result()
                        if batch_index + 1 < len(starts):  # load the next batch while the models run
                            pending = loader.submit(load, starts[batch_index + 1])
                    else:
                        host = load(start)
                    images = host.to(self.device, non_blocking=True)
                    # (x / 255 - mean) / std as one fused multiply-add on the device
                    x = torch.addcmul(shift, images.to(torch.float32), scale)
                    if view.kind == "noise" and view.eps > 0:
                        x = x + self._noise(view, start, stop, tuple(x.shape[1:]))
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    for key, module in modules.items():
                        for mc_pass in range(passes):
                            outputs[key][mc_pass, start:stop] = self._forward(
                                module, x, missing[key], dataset, width, mc_passes, mc_pass, batch_index
                            )
                    job.update(stop)
        finally:
            if loader is not None:
                loader.shutdown(wait=True, cancel_futures=True)
            for module in modules.values():
                _set_mc_dropout(module, enabled=False)
                module.to("cpu", memory_format=torch.contiguous_format)
        for key, array in outputs.items():
            self.cache.put(key, {"log_probs": array})
            self.computed.append(key)
        job.close()
        return outputs

    def _forward(
        self,
        module: torch.nn.Module,
        x: torch.Tensor,
        leaf: LoadedModel,
        dataset: ImageDataset,
        width: int,
        mc_passes: int,
        mc_pass: int,
        batch_index: int,
    ) -> np.ndarray:
        self.forward_passes += 1
        dtype = PRECISIONS[self.precision]
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            if mc_passes:
                devices = [self.device] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(_seed_for("mc", self.seed, mc_pass, batch_index))
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
