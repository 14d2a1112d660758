"""Released corruption benchmarks: CIFAR-10-C / CIFAR-100-C and ImageNet-C folders.

CIFAR-C layout (Hendrycks & Dietterich's release)::

    <root>/<corruption>.npy   uint8 [5 N, 32, 32, 3], severities 1..5 in blocks of N rows
    <root>/labels.npy         integer [5 N], sliced per severity like the images

(N = 10000 in the released files.) ImageNet-C layout::

    <root>/<corruption>/<severity>/<wnid>/*.JPEG

Files are opened with ``np.load(mmap_mode="r", allow_pickle=False)``; every
problem is reported as a :class:`~prunecheck.core.errors.DataError` naming the file,
what was expected and what was found.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from prunecheck.core.corruption_names import ALL_CORRUPTIONS, SEVERITIES
from prunecheck.core.errors import DataError
from prunecheck.data.base import ArrayDataset, ImageDataset

#: Number of severity blocks in a CIFAR-C file.
NUM_SEVERITIES = len(SEVERITIES)
#: Image shape (H, W, C) of one CIFAR-C row.
CIFAR_C_IMAGE_SHAPE = (32, 32, 3)
#: Row count per severity in the released CIFAR-10-C / CIFAR-100-C files.
CIFAR_C_RELEASED_ROWS = 10000
#: Released ImageNet-C images: shorter side resized to 256, centre-cropped to 224.
IMAGENET_C_RESIZE = 256
IMAGENET_C_SIDE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _check_name(corruption: str) -> None:
    if not isinstance(corruption, str) or not _NAME_RE.match(corruption):
        raise DataError(
            f"expected a corruption name of letters, digits, '_' or '-', found {corruption!r}"
        )


def _check_severity(severity: object, where: str) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise DataError(f"{where}: expected severity an integer in 1..5, found {severity!r}")
    return int(severity)


def _order(names: Sequence[str]) -> tuple[str, ...]:
    """Benchmark order first, then any other names alphabetically."""
    known = [n for n in ALL_CORRUPTIONS if n in names]
    return tuple(known + sorted(set(names) - set(known)))


def available_released_corruptions(root: Path) -> tuple[str, ...]:
    """Corruptions present in a CIFAR-C or ImageNet-C folder.

    CIFAR-C: every ``<name>.npy`` except ``labels.npy``. ImageNet-C: every
    subfolder that has at least one severity subfolder ``1`` .. ``5``.

    Args:
        root: the benchmark folder.

    Returns:
        Names in benchmark order, then unknown names alphabetically; empty if none.

    Raises:
        DataError: if ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"expected a corruption benchmark folder at {root}, found none")
    names: list[str] = []
    for entry in os.scandir(root):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.endswith(".npy") and entry.name != "labels.npy":
            names.append(entry.name[: -len(".npy")])
        elif entry.is_dir() and any((Path(entry.path) / str(s)).is_dir() for s in SEVERITIES):
            names.append(entry.name)
    return _order(names)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: expected a numpy .npy array file, found one that cannot be read "
            f"({type(exc).__name__}: {exc})"
        ) from exc


class CifarCDataset(ArrayDataset):
    """One (corruption, severity) block of a CIFAR-C file, memory-mapped (NHWC, served as NCHW).

    Attributes:
        path: the corruption's .npy file.
        severity: 1..5.
        rows: slice of file rows served.
    """

    _salt = b"cifar-c\0"

    def __init__(
        self,
        name: str,
        path: Path,
        labels_path: Path,
        images: np.ndarray,
        labels: np.ndarray,
        severity: int,
        rows: slice,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
    ):
        labels_served = torch.from_numpy(np.asarray(labels[rows], dtype=np.int64))
        super().__init__(name, images[rows], labels_served, num_classes, mean, std)
        self.path = path
        self.labels_path = labels_path
        self.severity = severity
        self.rows = rows

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w, c = self._images.shape[1:]
        return (c, h, w)

    def images(self, indices: np.ndarray) -> torch.Tensor:
        rows = np.asarray(indices, dtype=np.int64)
        batch = np.asarray(self._images[rows])  # [B, H, W, 3]
        return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


def load_cifar_c(
    root: Path,
    corruption: str,
    severity: int,
    *,
    name: str,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> ImageDataset:
    """Load one corruption at one severity from a CIFAR-10-C / CIFAR-100-C folder.

    Args:
        root: folder holding ``<corruption>.npy`` and ``labels.npy``.
        corruption: file stem, e.g. ``"gaussian_noise"``.
        severity: 1..5; rows ``[(severity - 1) N, severity N)`` are served,
            ``N = rows / 5``.
        name: dataset name for ids and reports.
        num_classes: 10 or 100; labels must lie in ``[0, num_classes)``.
        mean, std: per-channel normalisation.

    Returns:
        An ImageDataset of N images, uint8 [B, 3, 32, 32] per batch.

    Raises:
        DataError: missing folder or file (lists the corruptions that are there),
            unreadable file, wrong dtype / ndim / image shape, a row count not
            divisible by 5, a labels length or dtype that does not match, or a
            label outside ``[0, num_classes)``.
    """
    root = Path(root)
    _check_name(corruption)
    where = f"CIFAR-C {root} ({corruption}, severity {severity})"
    severity = _check_severity(severity, where)
    if not root.is_dir():
        raise DataError(f"{where}: expected a CIFAR-C folder at {root}, found none")
    path = root / f"{corruption}.npy"
    labels_path = root / "labels.npy"
    if not path.is_file():
        there = available_released_corruptions(root)
        raise DataError(
            f"{path}: expected the corruption file, found none; "
            + (f"{root} holds: {', '.join(there)}" if there else f"{root} holds no <corruption>.npy files")
        )
    if not labels_path.is_file():
        raise DataError(f"{labels_path}: expected the labels file of {root}, found none")

    images = _load_npy(path)
    if images.dtype != np.uint8:
        raise DataError(f"{path}: expected dtype uint8, found {images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != CIFAR_C_IMAGE_SHAPE:
        raise DataError(
            f"{path}: expected shape [5*N, 32, 32, 3] (N = {CIFAR_C_RELEASED_ROWS} in the released "
            f"files), found {tuple(images.shape)}"
        )
    total = images.shape[0]
    if total == 0 or total % NUM_SEVERITIES:
        raise DataError(
            f"{path}: expected a row count that is a positive multiple of {NUM_SEVERITIES} "
            f"(severities 1..5 in equal blocks), found {total} rows"
        )
    labels = _load_npy(labels_path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{labels_path}: expected a 1-D integer array, found {labels.dtype} {tuple(labels.shape)}"
        )
    if labels.shape[0] != total:
        raise DataError(
            f"{labels_path}: expected {total} labels (one per row of {path.name}), "
            f"found {labels.shape[0]}"
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"{labels_path}: expected labels in [0, {num_classes - 1}] for {num_classes} classes, "
            f"found values in [{low}, {high}]"
        )
    block = total // NUM_SEVERITIES
    rows = slice((severity - 1) * block, severity * block)
    return CifarCDataset(
        name, path, labels_path, images, labels, severity, rows, num_classes, mean, std
    )


def imagenet_c_geometry(resize: int | None, crop: int | None) -> tuple[int | None, int | None]:
    """How to bring released ImageNet-C images to the geometry of a nominal view.

    A released image is the central 224 x 224 of the original with its shorter side
    resized to 256. The nominal view (shorter side resized to ``resize``, centre crop
    ``crop``) is then the central ``crop`` pixels of the released image resized by
    ``resize / 256``, which needs ``crop <= 224 resize / 256``.

    Args:
        resize, crop: the nominal view's settings (``None, None``: images used as they are,
            so the nominal images must be 224 x 224 too).

    Returns:
        ``(resize, crop)`` for the released images: ``(None, None)`` for the standard
        ImageNet evaluation (256, 224); ``round(224 resize / 256)`` and ``crop`` otherwise.

    Raises:
        DataError: when the nominal view shows more of the image than ImageNet-C kept.

    Example:
        >>> imagenet_c_geometry(256, 224), imagenet_c_geometry(146, 128), imagenet_c_geometry(256, 192)
        ((None, None), (128, 128), (224, 192))
    """
    if resize is None and crop is None:
        return None, None
    if resize is None or crop is None:
        raise DataError(f"ImageNet-C geometry: expected both resize and crop of the nominal view, found {resize}, {crop}")
    scaled = IMAGENET_C_SIDE * resize / IMAGENET_C_RESIZE
    if crop > scaled + 1e-9:
        raise DataError(
            f"ImageNet-C geometry: the nominal view (resize {resize}, crop {crop}) shows the central "
            f"{crop / resize:.3f} of each image, but released ImageNet-C images keep only the central "
            f"{IMAGENET_C_SIDE / IMAGENET_C_RESIZE:.3f} (resize {IMAGENET_C_RESIZE}, crop {IMAGENET_C_SIDE}); "
            f"use crop <= {int(scaled)} for resize {resize}, or generate the corruptions (no corruptions_root)"
        )
    new_resize = int(round(scaled))
    if new_resize == IMAGENET_C_SIDE and crop == IMAGENET_C_SIDE:
        return None, None
    return new_resize, crop


def load_imagenet_c(
    root: Path,
    corruption: str,
    severity: int,
    *,
    name: str = "imagenet-c",
    classes: Sequence[str] | None = None,
    resize: int | None = None,
    crop: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    decode_threads: int | None = None,
) -> ImageDataset:
    """Load ``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` as an image-folder dataset.

    The released ImageNet-C images are already 224 x 224 (shorter side resized to
    256, centre-cropped to 224, before corrupting). ``resize`` / ``crop`` are the
    *nominal* view's settings: the released images are brought to that geometry
    with :func:`imagenet_c_geometry` (for the standard 256 / 224 they are used as
    they are), never resized and cropped a second time with the nominal settings.

    Args:
        root: ImageNet-C folder.
        corruption: corruption folder name.
        severity: 1..5.
        name: dataset name for ids and reports.
        classes: full class (wnid) list fixing the label index. Without it the
            severity folder must hold all 1000 wnid folders, so that sorted
            folder names give the standard ImageNet index.
        resize, crop: the nominal dataset's settings (``None``: images used as they are).
        mean, std, decode_threads: as for ``ImageFolderDataset``.

    Raises:
        DataError: missing folders (lists what is there), a partial class set
            without ``classes``, a nominal geometry ImageNet-C cannot provide, or any
            image-folder error.
    """
    from prunecheck.data.imagefolder import IMAGENET_NUM_CLASSES, ImageFolderDataset

    root = Path(root)
    _check_name(corruption)
    where = f"ImageNet-C {root} ({corruption}, severity {severity})"
    severity = _check_severity(severity, where)
    resize, crop = imagenet_c_geometry(resize, crop)
    if not root.is_dir():
        raise DataError(f"{where}: expected an ImageNet-C folder at {root}, found none")
    corruption_dir = root / corruption
    if not corruption_dir.is_dir():
        there = available_released_corruptions(root)
        raise DataError(
            f"{corruption_dir}: expected the corruption folder, found none; "
            + (f"{root} holds: {', '.join(there)}" if there else f"{root} holds no corruption folders")
        )
    folder = corruption_dir / str(severity)
    if not folder.is_dir():
        present = sorted(e.name for e in os.scandir(corruption_dir) if e.is_dir())
        raise DataError(
            f"{folder}: expected severity folder {severity}, found none; {corruption_dir} holds "
            + (", ".join(present) if present else "no subfolders")
        )
    if classes is None:
        found = [e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
        if len(found) != IMAGENET_NUM_CLASSES:
            raise DataError(
                f"{folder}: expected {IMAGENET_NUM_CLASSES} wnid folders, found {len(found)}; "
                "labels index the sorted folder names, so a partial folder would shift them. "
                "Pass the full wnid list as classes"
            )
    return ImageFolderDataset(
        name,
        folder,
        classes=classes,
        resize=resize,
        crop=crop,
        mean=mean,
        std=std,
        decode_threads=decode_threads,
    )
