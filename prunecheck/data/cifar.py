"""CIFAR-10 / CIFAR-100 in the official "python version" format.

Layouts (``root`` may also point directly at the batches folder)::

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

Each batch file is a pickled dict with ``data`` (uint8 ndarray [N, 3072], one
image per row: 1024 red, then 1024 green, then 1024 blue values, each plane
row-major 32x32) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).

The pickles are read with :class:`RestrictedUnpickler`, which resolves only the
handful of globals these files need (numpy array and dtype reconstruction, a
latin-1 string encoder); any other global, such as ``os.system`` planted in a
malicious ``__reduce__``, raises :class:`~prunecheck.core.errors.DataError` before it
can be called. Integrity is checked by validating shapes and label ranges, not
by md5 sums, so small hand-written files in the same format load as well.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from prunecheck.config.settings import DatasetSpec
from prunecheck.core.errors import DataError
from prunecheck.data.base import TensorDataset

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _np_numeric  # type: ignore[no-redef]

IMAGE_SIZE = 32
ROW_LENGTH = 3 * IMAGE_SIZE * IMAGE_SIZE  # 3072


@dataclass(frozen=True)
class CifarFormat:
    """Where one CIFAR variant keeps its files and what they contain."""

    title: str
    folder: str
    num_classes: int
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str


CIFAR10 = CifarFormat(
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    num_classes=10,
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
)
CIFAR100 = CifarFormat(
    title="CIFAR-100",
    folder="cifar-100-python",
    num_classes=100,
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
)


# --------------------------------------------------------------------------- unpickling


class ForbiddenPickleError(pickle.UnpicklingError):
    """The stream asked for something outside the allow-list."""


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """What ``_codecs.encode`` does for protocol-2 ``bytes``, restricted to latin-1."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise ForbiddenPickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    if not isinstance(text, str):
        raise ForbiddenPickleError(f"_codecs.encode expects a str, found {type(text).__name__}")
    return text.encode("latin1", errors)


def _bytes(*args: Any) -> bytes:
    """``builtins.bytes`` as protocol-2 pickles use it: ``bytes()`` or a copy of bytes."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise ForbiddenPickleError("bytes() is only allowed with no argument or a bytes argument")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "bytes"): _bytes,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _np_multiarray._reconstruct
    _ALLOWED_GLOBALS[(_module, "scalar")] = _np_multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED_GLOBALS[(_module, "_frombuffer")] = _np_numeric._frombuffer

# Python 2 module names, as written by the original cPickle files.
_PY2_MODULES = {"__builtin__": "builtins"}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, lists, dicts and bytes, nothing else.

    Every global the stream names must be in a fixed allow-list; anything else
    raises ``pickle.UnpicklingError`` without being imported.
    """

    def find_class(self, module: str, name: str) -> Any:
        key = (_PY2_MODULES.get(module, module), name)
        try:
            return _ALLOWED_GLOBALS[key]
        except KeyError:
            raise ForbiddenPickleError(
                f"global '{module}.{name}' is not allowed in a CIFAR batch file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenPickleError("persistent ids are not allowed in a CIFAR batch file")


def restricted_load(path: Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (Python 2 strings as bytes).

    Raises:
        DataError: the file cannot be read, is not a pickle, or names a
            global outside the allow-list.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read CIFAR file {path}: {exc}") from exc
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except ForbiddenPickleError as exc:
        raise DataError(f"refusing to load {path}: {exc}") from exc
    except Exception as exc:  # truncated or garbled stream: many exception types
        raise DataError(
            f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {exc})"
        ) from exc


# --------------------------------------------------------------------------- reading


def _text_keys(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def read_batch(path: Path, fmt: CifarFormat) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file.

    Args:
        path: the pickled batch (e.g. ``test_batch``).
        fmt: :data:`CIFAR10` or :data:`CIFAR100`.

    Returns:
        ``(images, labels)``: uint8 [N, 3, 32, 32] (CHW, RGB) and int64 [N].

    Raises:
        DataError: a missing key, a data array that is not uint8 [N, 3072],
            a label count that differs from N, or a label outside
            ``0..num_classes-1``.
    """
    batch = _text_keys(restricted_load(path), path)
    for key in ("data", fmt.label_key):
        if key not in batch:
            raise DataError(
                f"{path}: expected key '{key}' in the {fmt.title} batch dict, "
                f"found keys {sorted(batch)}"
            )
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != ROW_LENGTH
    ):
        found = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataError(
            f"{path}: expected 'data' to be a uint8 array [N, {ROW_LENGTH}] "
            f"(3 x 32 x 32 per row), found {found}"
        )
    try:
        labels = np.asarray(batch[fmt.label_key])
    except Exception as exc:
        raise DataError(f"{path}: '{fmt.label_key}' is not a list of integers ({exc})") from exc
    if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise DataError(
            f"{path}: expected '{fmt.label_key}' to be a flat list of integers, "
            f"found {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape[0] != data.shape[0]:
        raise DataError(
            f"{path}: expected {data.shape[0]} labels (one per image row), "
            f"found {labels.shape[0]} in '{fmt.label_key}'"
        )
    labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= fmt.num_classes))
    if bad.size:
        raise DataError(
            f"{path}: expected {fmt.title} labels in 0..{fmt.num_classes - 1}, "
            f"found {labels[bad[0]]} at row {bad[0]} ({bad.size} out of range)"
        )
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
    return images, labels


def read_label_names(path: Path, fmt: CifarFormat) -> list[str]:
    """Class names from ``batches.meta`` / ``meta``; checks there are ``num_classes``."""
    meta = _text_keys(restricted_load(path), path)
    names = meta.get(fmt.names_key)
    if not isinstance(names, (list, tuple)):
        raise DataError(
            f"{path}: expected a list under '{fmt.names_key}', "
            f"found {type(names).__name__ if names is not None else 'no such key'}"
        )
    if len(names) != fmt.num_classes:
        raise DataError(
            f"{path}: expected {fmt.num_classes} names under '{fmt.names_key}', found {len(names)}"
        )
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


# --------------------------------------------------------------------------- locating


def _batch_files(fmt: CifarFormat, split: str, name: str) -> tuple[str, ...]:
    if split == "train":
        return fmt.train_files
    if split == "test":
        return fmt.test_files
    raise DataError(
        f"dataset '{name}' ({fmt.title}): expected split 'train' or 'test', found {split!r}"
    )


def locate_folder(root: Path, fmt: CifarFormat, files: tuple[str, ...]) -> Path:
    """The folder holding the batch files: ``root/<folder>`` or ``root`` itself.

    ``root`` itself is chosen when it is named like the batches folder or
    already contains one of the expected files; otherwise ``root/<folder>``
    (which may not exist yet).
    """
    nested = root / fmt.folder
    if nested.is_dir():
        return nested
    if root.name == fmt.folder or any((root / f).is_file() for f in files):
        return root
    return nested


def _missing(folder: Path, files: tuple[str, ...]) -> list[str]:
    return [f for f in files if not (folder / f).is_file()]


def _download(root: Path, fmt: CifarFormat, split: str, folder: Path) -> None:
    """Fetch the archive with torchvision into the directory above ``folder``."""
    import torchvision.datasets as tvd  # lazy: only when a download is requested

    cls = tvd.CIFAR10 if fmt is CIFAR10 else tvd.CIFAR100
    target = folder.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        cls(str(target), train=(split == "train"), download=True)
    except Exception as exc:
        raise DataError(
            f"downloading {fmt.title} into {target} failed ({type(exc).__name__}: {exc})"
        ) from exc


def load_cifar(spec: DatasetSpec, fmt: CifarFormat) -> TensorDataset:
    """Load one split of CIFAR-10 or CIFAR-100 described by ``spec``.

    Args:
        spec: ``root`` (the folder containing the batches folder, or the
            batches folder itself), ``split`` (``"train"``/``"test"``),
            ``download``, ``mean``/``std``.
        fmt: :data:`CIFAR10` or :data:`CIFAR100`.

    Returns:
        A :class:`TensorDataset` named ``spec.name`` with uint8 images
        [N, 3, 32, 32] and ``fmt.num_classes`` classes; it also carries
        ``classes`` (names from the meta file, or ``None`` when absent).

    Raises:
        DataError: no root, missing files (with ``download = false``), or a
            malformed file.
    """
    if spec.root is None:
        raise DataError(
            f"dataset '{spec.name}' ({fmt.title}): expected a root folder, found none; "
            f"set root to the folder that contains '{fmt.folder}'"
        )
    root = Path(spec.root).expanduser()
    files = _batch_files(fmt, spec.split, spec.name)
    folder = locate_folder(root, fmt, files)
    missing = _missing(folder, files)
    if missing and spec.download:
        _download(root, fmt, spec.split, folder)
        folder = locate_folder(root, fmt, files)
        missing = _missing(folder, files)
    if missing:
        raise DataError(
            f"dataset '{spec.name}' ({fmt.title}, split '{spec.split}'): expected files "
            f"{', '.join(files)} in {folder} (the official python-version layout), "
            f"missing: {', '.join(missing)}. "
            + (
                "The download finished without producing them."
                if spec.download
                else "Set download = true to fetch them with torchvision."
            )
        )
    parts = [read_batch(folder / f, fmt) for f in files]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    meta_path = folder / fmt.meta_file
    classes = read_label_names(meta_path, fmt) if meta_path.is_file() else None
    return TensorDataset(
        spec.name,
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(labels),
        fmt.num_classes,
        spec.mean,
        spec.std,
        source=str(folder),
        classes=classes,
    )


def load_cifar10(spec: DatasetSpec) -> TensorDataset:
    """CIFAR-10 (see :func:`load_cifar`)."""
    return load_cifar(spec, CIFAR10)


def load_cifar100(spec: DatasetSpec) -> TensorDataset:
    """CIFAR-100 with fine labels (see :func:`load_cifar`)."""
    return load_cifar(spec, CIFAR100)


LOADERS: dict[str, Callable[[DatasetSpec], TensorDataset]] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}
