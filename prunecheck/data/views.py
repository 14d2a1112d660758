"""One function from a nominal dataset and a view to the dataset under that view.

:func:`apply_view` is the only place that interprets a :class:`~prunecheck.core.views.View`:

- ``nominal``: the dataset itself;
- ``blur``: :class:`~prunecheck.data.corruptions.blur.BlurredDataset`, computed per batch;
- ``corruption``: the released benchmark files when the dataset has a ``corruptions_root``
  (CIFAR-10/100-C, ImageNet-C), else a generated view cached on disk, by the reference
  (imagecorruptions) or the torch backend (``[run] corruption_backend``) with the dataset's
  ``corruption_profile``;
- ``noise``: :class:`NoisyDataset`, the same uint8 images plus a per-batch transform that adds
  U(-eps, eps) in normalised input space, without clipping (seed 002).

Every dataset it returns carries its view (``dataset.view``), so the engine records the view
without interpreting it, and its fingerprint names the view, so the prediction cache separates
views (and, for noise, eps, repetition and seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from prunecheck.core.errors import DataError
from prunecheck.core.io import derived_seed
from prunecheck.core.views import View
from prunecheck.data.base import DerivedDataset, ImageDataset, Subset, digest, stratified_indices

if TYPE_CHECKING:
    from prunecheck.config.settings import DatasetSpec

#: Noise is drawn per block of this many rows, so it does not depend on the batch size or shard.
NOISE_BLOCK = 64
#: Bump when the noise values change (part of the noise view's fingerprint).
NOISE_VERSION = "1"
Progress = Callable[[str], None]


class NoisyDataset(DerivedDataset):
    """``base`` under an L-inf noise view: its uint8 images, plus noise added after normalisation.

    The noise of row ``i`` is ``eps * (2 u - 1)``, where ``u`` is row ``i % NOISE_BLOCK`` of
    ``torch.rand((NOISE_BLOCK, 3, H, W))`` drawn by a CPU generator seeded with
    ``derived_seed("noise", seed, view.key, i // NOISE_BLOCK)``. A row's noise therefore depends
    only on (seed, view, row): not on the batch size, the shard or the device. Repetitions are
    views with another ``repetition``, hence other seeds.

    Args:
        base: the nominal dataset (rows are positions in it).
        view: a noise view (``prunecheck.core.views.noise(eps, repetition)``).
        seed: the run seed (``[run] seed``).
    """

    def __init__(self, base: ImageDataset, view: View, *, seed: int = 0):
        if view.kind != "noise":
            raise ValueError(f"NoisyDataset: expected a noise view, found {view.id}")
        super().__init__(base, view)
        self.seed = int(seed)
        self._fingerprint = digest(base.fingerprint(), "noise", view.key, self.seed, NOISE_BLOCK, NOISE_VERSION)

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return self.base.images(indices)  # the uint8 images are the nominal ones

    def fingerprint(self) -> str:
        return self._fingerprint

    def noise(self, start: int, stop: int, shape: tuple[int, ...]) -> torch.Tensor:
        """float32 [stop - start, *shape] on the CPU: the noise of rows [start, stop)."""
        first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
        blocks = []
        for block in range(first, last + 1):
            generator = torch.Generator().manual_seed(derived_seed("noise", self.seed, self.view.key, block))
            blocks.append(torch.rand((NOISE_BLOCK, *shape), generator=generator))
        uniform = torch.cat(blocks)[start - first * NOISE_BLOCK : stop - first * NOISE_BLOCK]
        return (uniform * 2.0 - 1.0) * self.view.eps

    def batch_transform(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``x`` (normalised rows [start, stop), on its device) plus their noise.

        The draw stays on the CPU generator (the values must not depend on the device);
        only the addition runs where ``x`` is.
        """
        if self.view.eps == 0 or stop <= start:
            return x
        return x + self.noise(start, stop, tuple(x.shape[1:])).to(x.device, non_blocking=True)


def apply_view(
    dataset: ImageDataset,
    view: View,
    *,
    seed: int = 0,
    spec: "DatasetSpec | None" = None,
    cache_dir: Path | None = None,
    backend: str = "imagecorruptions",
    limit: int | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> ImageDataset:
    """The dataset ``dataset`` (nominal) under ``view``.

    Args:
        dataset: the nominal dataset (already limited to ``[run] limit`` rows, if set).
        view: any view.
        seed: ``[run] seed``: noise draws, generated corruptions, the released files' sample.
        spec: the dataset's settings entry; corruption views need it (``corruptions_root``,
            ``corruption_profile``, and for released files the name, kind, mean/std, geometry).
        cache_dir: where generated corruption views are stored (corruption views without
            released files need it).
        backend: ``[run] corruption_backend``: ``"imagecorruptions"`` (reference) or ``"torch"``
            (for the corruptions it covers; the others still use the reference).
        limit: ``[run] limit``: released files keep the same class-stratified sample of rows as
            the nominal dataset (:func:`~prunecheck.data.base.stratified_indices`).
        device: where the torch backend generates.
        progress: called with one line of text per generated chunk.

    Returns:
        A dataset whose ``view`` is ``view`` and whose fingerprint names it.

    Raises:
        ValueError: a corruption view without ``spec`` (or without ``cache_dir`` when generated).
        DataError: released files that do not match the nominal images.
    """
    if view.kind == "nominal":
        return dataset
    if view.kind == "noise":
        return NoisyDataset(dataset, view, seed=seed)
    if view.kind == "blur":
        from prunecheck.data.corruptions.blur import BlurredDataset

        return BlurredDataset(dataset, view.radius)
    if view.kind != "corruption":
        raise ValueError(f"apply_view: unknown view kind {view.kind!r}")
    if spec is None:
        raise ValueError(f"apply_view: corruption view {view.id} needs the dataset's settings (spec)")
    if spec.corruptions_root is not None:
        return _released(dataset, view, spec, seed=seed, limit=limit)
    if cache_dir is None:
        raise ValueError(f"apply_view: generated corruption view {view.id} needs a cache_dir")
    from prunecheck.core.progress import counting
    from prunecheck.data.corruptions.generate import CorruptedDataset

    common = dict(
        profile=spec.corruption_profile,
        seed=seed,
        cache_dir=Path(cache_dir),
        progress=counting(progress or (lambda message: None), f"generating {view.id} of {dataset.name}"),
    )
    if backend == "torch":
        from prunecheck.data.corruptions.torch_backend import TORCH_CORRUPTIONS, TorchCorruptedDataset

        if view.name in TORCH_CORRUPTIONS:
            return TorchCorruptedDataset(dataset, view.name, view.severity, device=device, **common)
    return CorruptedDataset(dataset, view.name, view.severity, **common)


def _released(nominal: ImageDataset, view: View, spec: "DatasetSpec", *, seed: int, limit: int | None) -> ImageDataset:
    """The released benchmark files (CIFAR-10/100-C folder or ImageNet-C tree) for ``view``."""
    from prunecheck.data.corruptions import released

    common = dict(name=f"{spec.name}-c", mean=spec.mean, std=spec.std)
    if spec.kind in ("cifar10", "cifar100"):
        dataset = released.load_cifar_c(
            spec.corruptions_root, view.name, view.severity,
            num_classes=10 if spec.kind == "cifar10" else 100, **common,
        )
    else:
        dataset = released.load_imagenet_c(
            spec.corruptions_root, view.name, view.severity, classes=spec.options.get("classes"),
            resize=spec.resize, crop=spec.crop, **common,
        )
    dataset.view = view  # the loaders serve plain image folders and arrays; this is the view they hold
    if tuple(dataset.image_shape) != tuple(nominal.image_shape):
        raise DataError(
            f"{spec.corruptions_root}: expected corrupted images of the nominal view's size "
            f"{tuple(nominal.image_shape)[1:]} (dataset '{spec.name}'), found {tuple(dataset.image_shape)[1:]} "
            f"for {view.id}"
        )
    if limit is not None and len(dataset) > limit:
        # the rows the nominal view keeps (same labels, same seed): not the first rows, which
        # in class-sorted releases (ImageNet-C) cover a few classes and pair with no nominal row
        dataset = Subset(dataset, stratified_indices(dataset.labels, limit, seed=seed))
    return dataset


def view_source(dataset: ImageDataset, spec: "DatasetSpec | None" = None) -> str:
    """Where the images of a view's dataset (from :func:`apply_view`) come from, for the report.

    ``"generated, cifar profile"`` (plus ``", torch backend"``), ``"released files in <root>"``
    (``spec.corruptions_root``), ``"uniform L-inf noise in normalised input space"`` for noise
    views, ``""`` for the others.
    """
    view = dataset.view
    if view.kind == "noise":
        return "uniform L-inf noise in normalised input space"
    if view.kind != "corruption":
        return ""
    from prunecheck.data.corruptions.generate import CorruptedDataset

    if not isinstance(dataset, CorruptedDataset):
        return f"released files in {spec.corruptions_root if spec is not None else 'the corruptions root'}"
    from prunecheck.data.corruptions.torch_backend import TorchCorruptedDataset

    backend = ", torch backend" if isinstance(dataset, TorchCorruptedDataset) else ""
    return f"generated, {dataset.profile} profile{backend}"
