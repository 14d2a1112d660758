"""The one interface every dataset offers to the prediction engine.

Images travel as uint8 tensors [B, 3, H, W] (NCHW, RGB); normalisation with
``mean``/``std`` happens in the engine, on the evaluation device, followed by the
dataset's :meth:`~ImageDataset.batch_transform` (identity, except for views that act
in normalised space: noise, :mod:`prunecheck.data.views`). Datasets are indexable by
an integer array so the engine (and corruption generators) can work in batches
without per-sample Python in the hot path.
"""

from __future__ import annotations

import abc
import hashlib
from typing import Callable, Sequence

import numpy as np
import torch
from prunecheck.core.io import cache_key
from prunecheck.core.views import NOMINAL, View


class ImageDataset(abc.ABC):
    """A labelled image classification dataset of fixed-size RGB images."""

    #: Short human-readable name (used in ids and reports).
    name: str
    #: Number of classes the labels index into.
    num_classes: int
    #: Per-channel normalisation applied by the engine: (x/255 - mean) / std.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: The view of the data these images present (:func:`prunecheck.data.views.apply_view` sets it).
    view: View = NOMINAL
    #: Class names indexed by label, when the source has them (CIFAR's meta file, ImageFolder's
    #: folders, the demo); reports show them next to the class index.
    classes: Sequence[str] | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @property
    @abc.abstractmethod
    def labels(self) -> torch.Tensor:
        """int64 tensor [N] of class indices."""

    @abc.abstractmethod
    def images(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 tensor [len(indices), 3, H, W] for the given row indices."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Stable text identifying the content (part of prediction cache keys).

        Must change when the images, labels, preprocessing or subset change.
        """

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(3, H, W) of one image."""
        return tuple(self.images(np.arange(1)).shape[1:])  # type: ignore[return-value]

    def batch_transform(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) of this dataset, normalised, on the evaluation device -> model input.

        The engine calls it on every batch after ``(x / 255 - mean) / std``. The default
        returns ``x``; views that act in normalised space (noise) override it. It must be
        cheap, stay on ``x.device``, and depend only on the row positions, not on the batching.
        """
        return x

    @property
    def transforms_batches(self) -> bool:
        """Whether :meth:`batch_transform` is overridden (rows cannot then be re-indexed freely)."""
        return type(self).batch_transform is not ImageDataset.batch_transform


def digest(*parts: object) -> str:
    """Short sha256 over the text of ``parts`` (for fingerprints)."""
    return cache_key(*parts)[:16]


def normaliser(
    mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The input normalisation of every model input: uint8 [B, 3, H, W] -> float32 ``(x / 255 - mean) / std``.

    Computed as one fused multiply-add, ``x * (1 / (255 std)) + (-mean / std)``, on ``device``
    (the batch is moved there). The engine and pruning calibration both use it, so a model
    sees the same float inputs wherever prunecheck runs it.

    Example:
        >>> normalise = normaliser((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        >>> [round(v, 6) for v in normalise(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten().tolist()]
        [2.0, 2.0, 2.0]
    """
    mean_t = torch.tensor(tuple(mean), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(tuple(std), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    scale, shift = 1.0 / (255.0 * std_t), -mean_t / std_t

    def normalise(images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(shift, images.to(device=shift.device, dtype=torch.float32), scale)

    return normalise


def array_fingerprint(images: np.ndarray, labels: torch.Tensor, meta: tuple, *, salt: bytes = b"") -> str:
    """Short sha256 of an in-memory dataset: ``salt``, the image bytes (any layout, read in
    blocks of 4096 rows, so a memory map is never loaded whole), the int64 labels, ``repr(meta)``."""
    h = hashlib.sha256(salt)
    for start in range(0, len(images), 4096):
        h.update(np.ascontiguousarray(images[start : start + 4096]).tobytes())
    h.update(labels.numpy().tobytes())
    h.update(repr(meta).encode())
    return h.hexdigest()[:16]


def stratified_indices(labels: np.ndarray | torch.Tensor, size: int, *, seed: int = 0) -> np.ndarray:
    """A seeded, class-stratified sample of ``size`` row indices, sorted.

    Sorted datasets (ImageFolder, ImageNet val) hold their classes in blocks, so
    the first 1,000 rows of ImageNet val cover about 20 classes. Here every class
    gets ``size * n_c / N`` rows (floored; the remaining rows go to the classes
    with the largest fractional parts, ties to the lower class index), drawn
    without replacement by ``numpy.random.default_rng(seed)``. The rows depend
    only on the labels and the seed, so every model is scored on the same ones.

    Args:
        labels: int [N] class index of every row.
        size: rows wanted, >= 1; all rows (``arange(N)``) when ``size >= N``.
        seed: sampling seed (``[run] seed``).

    Returns:
        int64 [min(size, N)] increasing row indices.

    Example:
        >>> stratified_indices(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4, seed=0).tolist()
        [0, 2, 6, 7]
    """
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64).reshape(-1)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"sample size: expected an integer >= 1, found {size!r}")
    n = y.shape[0]
    if size >= n:
        return np.arange(n, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    exact = size * counts / n
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, then class index
    quota[order[: size - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


class OverBase(ImageDataset):
    """A dataset that presents rows of another one, ``base`` (a subset, a view): it keeps the
    base's name, classes and their names, and normalisation."""

    def __init__(self, base: ImageDataset, view: View):
        self.base = base
        self.view = view
        self.name = base.name
        self.num_classes = base.num_classes
        self.classes = base.classes
        self.mean = base.mean
        self.std = base.std


class Subset(OverBase):
    """Given rows of a dataset, e.g. the config's ``limit`` (:func:`stratified_indices`)."""

    def __init__(self, base: ImageDataset, indices: Sequence[int] | np.ndarray):
        if base.transforms_batches:
            raise ValueError(
                f"Subset: dataset '{base.name}' under view {base.view.id} transforms whole batches by row "
                "position; take the subset of the nominal dataset first, then apply the view"
            )
        super().__init__(base, base.view)
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> torch.Tensor:
        return self.base.labels[torch.from_numpy(self.indices)]

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return self.base.images(self.indices[np.asarray(indices, dtype=np.int64)])

    def fingerprint(self) -> str:
        return digest(self.base.fingerprint(), "subset", self.indices.tobytes())


class DerivedDataset(OverBase):
    """Base of the datasets that present every row of ``base`` under a view (blur, corruption,
    noise): same length, labels, classes, normalisation and image size; subclasses define
    ``images`` and ``fingerprint`` (and ``batch_transform`` if they act in normalised space)."""

    def __len__(self) -> int:
        return len(self.base)

    @property
    def labels(self) -> torch.Tensor:
        return self.base.labels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(3, H, W) of ``base``: views keep the image size (and this never computes a view)."""
        return self.base.image_shape


class ArrayDataset(ImageDataset):
    """Images held as one array (a tensor in memory or a memory-mapped file) with int64 labels.

    Subclasses say how rows of ``_images`` become uint8 NCHW tensors (``images``); the
    fingerprint hashes the served array, the labels and the metadata, salted per subclass.
    """

    #: Prefix of the fingerprint hash, so two layouts of the same bytes never share a key.
    _salt: bytes = b""

    def __init__(self, name: str, images, labels: torch.Tensor, num_classes: int, mean: Sequence[float],
                 std: Sequence[float]):
        self.name = name
        self._images = images
        self._labels = labels.to(torch.int64)
        self.num_classes = int(num_classes)
        self.mean = tuple(float(m) for m in mean)  # type: ignore[assignment]
        self.std = tuple(float(s) for s in std)  # type: ignore[assignment]
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return self._images.shape[0]

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            images = self._images.numpy() if isinstance(self._images, torch.Tensor) else self._images
            meta = (self.name, self.num_classes, self.mean, self.std)
            self._fingerprint = array_fingerprint(images, self._labels, meta, salt=self._salt)
        return self._fingerprint


class TensorDataset(ArrayDataset):
    """A dataset held in memory as uint8 [N, 3, H, W] plus int64 labels [N]."""

    def __init__(
        self,
        name: str,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        source: str = "",
        classes: Sequence[str] | None = None,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{name}: expected uint8 images [N, 3, H, W], found {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"{name}: expected {images.shape[0]} labels, found shape {tuple(labels.shape)}"
            )
        super().__init__(name, images.contiguous(), labels, num_classes, mean, std)
        self._source = source
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"{name}: expected {num_classes} class names, found {len(classes)}")
        self.classes = classes

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return self._images[torch.from_numpy(np.asarray(indices, dtype=np.int64))]
