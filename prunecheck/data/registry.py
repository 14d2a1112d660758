"""One entry point from a :class:`DatasetSpec` to an :class:`ImageDataset`.

A dispatch table maps ``spec.kind`` to its loader; ``limit`` keeps a seeded,
class-stratified sample of that many rows (``run.limit`` in the config).
"""

from __future__ import annotations

from typing import Callable

from prunecheck.config.settings import DatasetSpec
from prunecheck.core.errors import DataError
from prunecheck.data import cifar, imagefolder
from prunecheck.data.base import ImageDataset, Subset, stratified_indices

Loader = Callable[[DatasetSpec], ImageDataset]


def _load_demo(spec: DatasetSpec) -> ImageDataset:
    """The built-in procedural dataset (imported only when asked for)."""
    from prunecheck.data.demo import load_demo_dataset  # lazy: generating it needs torch

    return load_demo_dataset(spec)


LOADERS: dict[str, Loader] = {
    **cifar.LOADERS,
    **imagefolder.LOADERS,
    "demo": _load_demo,
}


def known_kinds() -> tuple[str, ...]:
    """The dataset kinds :func:`load_dataset` understands."""
    return tuple(LOADERS)


def load_dataset(spec: DatasetSpec, *, limit: int | None = None, seed: int = 0) -> ImageDataset:
    """Load the dataset described by ``spec``.

    Args:
        spec: the dataset entry of the settings; ``spec.kind`` picks the loader.
        limit: keep a class-stratified sample of ``min(limit, len)`` rows
            (:func:`~prunecheck.data.base.stratified_indices`; ``None``: all).
            Not the first rows: sorted datasets hold their classes in blocks.
        seed: the sample's seed (``[run] seed``).

    Returns:
        The dataset, wrapped in :class:`Subset` when ``limit`` is given.

    Raises:
        DataError: unknown kind, invalid limit, or whatever the loader finds wrong.

    Example::

        ds = load_dataset(DatasetSpec("c10", "cifar10", root=Path("data")), limit=100)
        ds.images(np.arange(8)).shape  # torch.Size([8, 3, 32, 32])
    """
    loader = LOADERS.get(spec.kind)
    if loader is None:
        raise DataError(
            f"dataset '{spec.name}': unknown kind {spec.kind!r}; "
            f"expected one of {', '.join(known_kinds())}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(
            f"dataset '{spec.name}': expected limit to be a positive integer, found {limit!r}"
        )
    dataset = loader(spec)
    if limit is not None:
        dataset = Subset(dataset, stratified_indices(dataset.labels, limit, seed=seed))
    return dataset
