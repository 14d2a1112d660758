"""Folders of image files, one subfolder per class (ImageNet val included).

Layout: ``<root>/<split>/<class>/**/<file>.{jpg,jpeg,png,ppm,bmp,pgm,tif,tiff,webp}``
(extensions matched case-insensitively, class folders searched recursively,
hidden folders and files starting with ``.`` skipped). Rows come in the order
torchvision's ``ImageFolder`` uses: by class, then by directory path, then by
file name. ``split = ""`` means
``root`` itself. Labels are indices into the sorted class folder names,
which for ImageNet val sorted into wnid folders is the standard 1000-class
index.

**Class list override.** ``options.classes`` (a list of folder names, or the
path of a text file with one name per line) fixes the label index instead of
the folders found on disk. Use it when the folder holds only some classes,
e.g. an ImageNet val folder with a few wnid folders: labels then still index
the full 1000-class list. Every folder on disk must be in the list.

**Preprocessing** is deterministic and done per requested batch: the image is
decoded with PIL and converted to RGB, its shorter side resized to ``resize``
(PIL bilinear, which antialiases when shrinking; the longer side becomes
``int(resize * long / short)``), then centre-cropped to ``crop`` x ``crop``
(top/left offset ``round((size - crop) / 2)``). This is the reference
torchvision ImageNet evaluation transform ``Resize(resize)`` +
``CenterCrop(crop)`` on PIL images. With only ``crop`` given,
``resize = round(crop * 256 / 224)``; with only ``resize`` given,
``crop = resize``; with neither, images are used as they are and must all have
the size of the first image.

Decoding may use threads (``options.decode_threads``, default
``min(4, cpu_count)``); results do not depend on it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from prunecheck.config.settings import DatasetSpec
from prunecheck.core.errors import DataError
from prunecheck.data.base import ImageDataset, digest

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
#: Bump when decoding or preprocessing changes (invalidates cached predictions).
PREPROCESS_VERSION = "pil-bilinear-centercrop-v1"
IMAGENET_RESIZE = 256
IMAGENET_CROP = 224
IMAGENET_NUM_CLASSES = 1000


# --------------------------------------------------------------------------- sizes


def resolve_sizes(resize: int | None, crop: int | None) -> tuple[int | None, int | None]:
    """Fill in a missing ``resize``/``crop`` from the other one.

    Args:
        resize: target length of the shorter side, or ``None``.
        crop: side of the square centre crop, or ``None``.

    Returns:
        ``(resize, crop)``: only crop -> ``resize = round(crop * 256 / 224)``;
        only resize -> ``crop = resize``; neither -> ``(None, None)``.

    Raises:
        DataError: a size that is not a positive integer, or ``crop > resize``.

    Example:
        >>> resolve_sizes(None, 224)
        (256, 224)
    """
    for label, value in (("resize", resize), ("crop", crop)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise DataError(f"expected {label} to be a positive integer, found {value!r}")
    if resize is None and crop is None:
        return None, None
    if resize is None:
        resize = int(round(crop * IMAGENET_RESIZE / IMAGENET_CROP))  # type: ignore[operator]
    if crop is None:
        crop = resize
    if crop > resize:
        raise DataError(
            f"expected crop <= resize (the crop is taken from the resized image), "
            f"found crop {crop} > resize {resize}"
        )
    return resize, crop


def resized_size(width: int, height: int, resize: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to ``resize``."""
    if width <= height:
        return resize, int(resize * height / width)
    return int(resize * width / height), resize


def crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred ``crop`` x ``crop`` window."""
    left = int(round((width - crop) / 2.0))
    top = int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def decode_image(path: str, resize: int | None, crop: int | None) -> np.ndarray:
    """Decode one file and preprocess it.

    Args:
        path: image file.
        resize: shorter side target (``None``: no resize).
        crop: centre crop side (``None``: no crop).

    Returns:
        uint8 array [3, H, W] (RGB).

    Raises:
        DataError: the file cannot be opened or decoded, names the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if resize is not None:
                size = resized_size(img.width, img.height, resize)
                if size != img.size:
                    img = img.resize(size, Image.BILINEAR)
            if crop is not None:
                if img.width < crop or img.height < crop:  # pragma: no cover - crop <= resize
                    raise DataError(f"{path}: image {img.size} is smaller than crop {crop}")
                img = img.crop(crop_box(img.width, img.height, crop))
            array = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise DataError(f"cannot decode image {path} ({type(exc).__name__}: {exc})") from exc
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception as exc:
        raise DataError(f"cannot read image {path} ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- discovery


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _class_folders(folder: Path) -> list[str]:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise DataError(f"cannot list image folder {folder}: {exc}") from exc
    return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _class_files(class_dir: Path) -> list[str]:
    """Image files under ``class_dir``, in torchvision ``ImageFolder`` order.

    That order is: directories sorted by their path text, files sorted within each.
    """
    walked = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        walked.append((dirpath, filenames))
    return [
        os.path.join(dirpath, f)
        for dirpath, filenames in sorted(walked)
        for f in sorted(filenames)
        if _is_image(f)
    ]


def read_class_list(value: Any, where: str) -> list[str]:
    """Parse ``options.classes``: a list of folder names or a text file path.

    Raises:
        DataError: not a list of unique non-empty strings / unreadable file.
    """
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise DataError(f"{where}: cannot read the class list file {path}: {exc}") from exc
        names = [line.strip() for line in lines if line.strip()]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise DataError(
            f"{where}: expected options.classes to be a list of folder names or a file path, "
            f"found {type(value).__name__}"
        )
    if not names or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{where}: expected options.classes to be non-empty folder names")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{where}: options.classes lists {dupes[:5]} more than once")
    return names


# --------------------------------------------------------------------------- dataset


class ImageFolderDataset(ImageDataset):
    """Class-per-folder images, decoded lazily per batch (see module docstring).

    Attributes:
        classes: label index -> class folder name.
        paths: absolute file path per row (sorted by class, then path).
        folder: the folder whose subfolders are the classes.
    """

    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        classes: Sequence[str] | None = None,
        resize: int | None = None,
        crop: int | None = None,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        decode_threads: int | None = None,
    ):
        self.name = name
        self.folder = Path(folder)
        self.mean = tuple(float(m) for m in mean)  # type: ignore[assignment]
        self.std = tuple(float(s) for s in std)  # type: ignore[assignment]
        self.resize, self.crop = resolve_sizes(resize, crop)
        if decode_threads is None:
            decode_threads = min(4, os.cpu_count() or 1)
        self.decode_threads = max(1, int(decode_threads))

        if not self.folder.is_dir():
            raise DataError(
                f"dataset '{name}': expected an image folder at {self.folder}, found none"
            )
        found = _class_folders(self.folder)
        if not found:
            loose = [f for f in sorted(os.listdir(self.folder)) if _is_image(f)]
            detail = (
                f"found {len(loose)} images directly in it (e.g. {loose[0]}); "
                "sort them into one subfolder per class"
                if loose
                else "found no subfolders"
            )
            raise DataError(
                f"dataset '{name}': expected one subfolder per class in {self.folder}, {detail}"
            )
        if classes is None:
            self.classes = found
        else:
            self.classes = list(classes)
            unknown = sorted(set(found) - set(self.classes))
            if unknown:
                raise DataError(
                    f"dataset '{name}': class folders {unknown[:5]} in {self.folder} are not "
                    f"in options.classes ({len(self.classes)} names); "
                    "add them or remove the folders"
                )
        index = {c: i for i, c in enumerate(self.classes)}

        paths: list[str] = []
        labels: list[int] = []
        for cls in found:
            files = _class_files(self.folder / cls)
            if not files:
                raise DataError(
                    f"dataset '{name}': class folder {self.folder / cls} holds no image files "
                    f"(expected extensions {', '.join(IMAGE_EXTENSIONS)})"
                )
            paths.extend(files)
            labels.extend([index[cls]] * len(files))
        self.paths = paths
        self.num_classes = len(self.classes)
        self._labels = torch.tensor(labels, dtype=torch.int64)
        self._stats: list[tuple[str, int, int]] = []
        for p in paths:
            try:
                st = os.stat(p)
            except OSError as exc:
                raise DataError(f"cannot stat image {p}: {exc}") from exc
            self._stats.append((os.path.relpath(p, self.folder), st.st_size, st.st_mtime_ns))
        self._fingerprint: str | None = None
        self._native_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.crop is not None:
            return (3, self.crop, self.crop)
        width, height = self._reference_size()
        return (3, height, width)

    def _reference_size(self) -> tuple[int, int]:
        if self._native_size is None:
            self._native_size = _image_size(self.paths[0])
        return self._native_size

    def _load(self, i: int) -> np.ndarray:
        path = self.paths[i]
        array = decode_image(path, self.resize, self.crop)
        if self.crop is None:
            width, height = self._reference_size()
            if array.shape[1:] != (height, width):
                raise DataError(
                    f"dataset '{self.name}': {path} is {array.shape[2]}x{array.shape[1]} but "
                    f"{self.paths[0]} is {width}x{height}; without resize/crop all images must "
                    "share one size (set crop, e.g. crop = 224)"
                )
        return array

    def images(self, indices: np.ndarray) -> torch.Tensor:
        """Decode and preprocess rows ``indices``: uint8 [len(indices), 3, H, W]."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        if not idx:
            return torch.empty((0, *self.image_shape), dtype=torch.uint8)
        if self.decode_threads > 1 and len(idx) > 1:
            with ThreadPoolExecutor(max_workers=min(self.decode_threads, len(idx))) as pool:
                arrays = list(pool.map(self._load, idx))
        else:
            arrays = [self._load(i) for i in idx]
        return torch.from_numpy(np.stack(arrays))

    def fingerprint(self) -> str:
        """Digest of folder, files (relative path, size, mtime), sizes, classes, mean/std."""
        if self._fingerprint is None:
            self._fingerprint = digest(
                "imagefolder",
                PREPROCESS_VERSION,
                str(self.folder.resolve()),
                self._stats,
                self.resize,
                self.crop,
                self.classes,
                self.mean,
                self.std,
            )
        return self._fingerprint


# --------------------------------------------------------------------------- loaders


def _where(spec: DatasetSpec) -> str:
    return f"dataset '{spec.name}' ({spec.kind})"


def _root(spec: DatasetSpec) -> Path:
    if spec.root is None:
        raise DataError(f"{_where(spec)}: expected a root folder, found none")
    return Path(spec.root).expanduser()


def _options(spec: DatasetSpec) -> tuple[list[str] | None, int | None]:
    opts = spec.options or {}
    classes = read_class_list(opts["classes"], _where(spec)) if "classes" in opts else None
    threads = opts.get("decode_threads")
    bad_threads = isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    if threads is not None and bad_threads:
        raise DataError(
            f"{_where(spec)}: expected options.decode_threads to be a positive integer, "
            f"found {threads!r}"
        )
    return classes, threads


def load_imagefolder(spec: DatasetSpec) -> ImageFolderDataset:
    """An :class:`ImageFolderDataset` over ``<root>/<split>`` (``split = ""``: root).

    Raises:
        DataError: missing folder, no class folders, empty class folder, bad options.
    """
    root = _root(spec)
    folder = root / spec.split if spec.split else root
    if not folder.is_dir():
        raise DataError(
            f"{_where(spec)}: expected the split folder {folder} (root {root}, split "
            f"{spec.split!r}; use split = \"\" for root itself), found none"
        )
    classes, threads = _options(spec)
    return _dataset(spec, folder, classes, threads, spec.resize, spec.crop)


def _dataset(spec: DatasetSpec, folder: Path, classes, threads, resize, crop) -> ImageFolderDataset:
    """The dataset over ``folder`` with the spec's name and normalisation, sizes resolved."""
    try:
        resize, crop = resolve_sizes(resize, crop)
    except DataError as exc:
        raise DataError(f"{_where(spec)}: {exc}") from None
    return ImageFolderDataset(
        spec.name, folder, classes=classes, resize=resize, crop=crop,
        mean=spec.mean, std=spec.std, decode_threads=threads,
    )


def _imagenet_folder(spec: DatasetSpec) -> Path:
    root = _root(spec)
    # ImageNet has no labelled test set: the (default) "test" split means val.
    split = "val" if spec.split == "test" else spec.split
    folder = root / split if split else root
    if folder.is_dir():
        return folder
    if spec.split == "test" and root.is_dir() and _class_folders(root):
        return root  # root is the val folder itself
    raise DataError(
        f"{_where(spec)}: expected ImageNet val in wnid folders at {folder} "
        f"(or root pointing at that folder), found none"
    )


def load_imagenet_val(spec: DatasetSpec) -> ImageFolderDataset:
    """ImageNet val in wnid folders, with ImageNet defaults.

    ``resize``/``crop`` default to 256/224; split ``"test"`` (the default)
    means ``<root>/val`` or, when that is missing, ``root`` itself. Without
    ``options.classes`` the folder must hold all 1000 wnid folders, so that
    sorted folder names give the standard class index.
    """
    folder = _imagenet_folder(spec)
    classes, threads = _options(spec)
    resize, crop = spec.resize, spec.crop
    if resize is None and crop is None:
        resize, crop = IMAGENET_RESIZE, IMAGENET_CROP
    if classes is None:
        found = _class_folders(folder)
        if len(found) != IMAGENET_NUM_CLASSES:
            raise DataError(
                f"{_where(spec)}: expected {IMAGENET_NUM_CLASSES} wnid folders in {folder}, "
                f"found {len(found)}; labels index the sorted folder names, so a partial folder "
                "would shift them. Give the full wnid list in options.classes (a list or a file "
                "with one wnid per line), or use kind = \"imagefolder\""
            )
    return _dataset(spec, folder, classes, threads, resize, crop)


LOADERS: dict[str, Callable[[DatasetSpec], ImageFolderDataset]] = {
    "imagefolder": load_imagefolder,
    "imagenet-val": load_imagenet_val,
}
