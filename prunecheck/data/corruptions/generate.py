"""Generated corruptions, deterministic per (image index, corruption, severity, seed), cached.

The corruption functions of imagecorruptions draw from numpy's global RNG. Before
each image the global RNG is seeded from a hash of (index, corruption, severity,
seed), and the caller's global state is restored afterwards, so an image's output
does not depend on which other images share its batch, on their order, or on
anything else that touched ``np.random``.

A :class:`CorruptedDataset` generates its whole view once and keeps it as an
``.npy`` file in a cache folder; writes are atomic and reads are verified.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from prunecheck.core.corruption_names import ALL_CORRUPTIONS, check_severity
from prunecheck.core.errors import CacheError
from prunecheck.core.io import atomic_path, file_lock, file_sha256, write_text
from prunecheck.core.views import corruption as corruption_view
from prunecheck.data.base import DerivedDataset, ImageDataset, digest
from prunecheck.data.corruptions.compat import apply_corruption
from prunecheck.data.corruptions.profiles import check_profile, resolve_profile

#: Bump when the output of any corruption changes (part of every cache key).
GENERATOR_VERSION = "1"
#: Images generated per chunk between progress callbacks / cache writes.
CHUNK_SIZE = 256
#: Files up to this size are checked against their sha256 on every open.
HASH_VERIFY_MAX_BYTES = 1 << 30

Progress = Callable[[int, int], None]

# numpy's global RNG is process-wide: threads generating at the same time must
# not interleave their seed -> corrupt sequences.
_GLOBAL_RNG_LOCK = threading.Lock()


def image_seed(index: int, name: str, severity: int, seed: int) -> np.ndarray:
    """128 bits of seed material (uint32 [4]) for ``np.random.seed``, from the four keys."""
    text = f"prunecheck-corruption|{int(index)}|{name}|{int(severity)}|{int(seed)}".encode()
    return np.frombuffer(hashlib.sha256(text).digest()[:16], dtype="<u4").astype(np.uint32)


def _check_request(name: str, severity: int) -> int:
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of: " + ", ".join(ALL_CORRUPTIONS))
    return check_severity(severity)


def corrupt_images(
    images: np.ndarray, indices: np.ndarray, name: str, severity: int, seed: int, profile: str = "imagenet"
) -> np.ndarray:
    """Apply one corruption to a batch of images, reproducibly.

    Image ``i`` is corrupted with numpy's global RNG seeded by
    ``image_seed(indices[i], name, severity, seed)``; the global RNG state from
    before the call is restored afterwards (also on error). Calls from several
    threads are serialised on a lock (the global RNG is shared). No other RNG is
    involved: the corruptions that draw elsewhere (``impulse_noise``) are fed from
    ``np.random`` (see :mod:`prunecheck.data.corruptions.compat`).

    Args:
        images: uint8 [N, H, W, 3] (NHWC, RGB), H and W at least 32.
        indices: int [N], the dataset row index of each image (the determinism key).
        name: one of ``ALL_CORRUPTIONS``.
        severity: 1..5.
        seed: run seed.
        profile: "imagenet" or "cifar" (:mod:`prunecheck.data.corruptions.profiles`).

    Returns:
        uint8 [N, H, W, 3].

    Raises:
        ValueError: for a bad name, severity, profile, dtype or shape.
    """
    severity = _check_request(name, severity)
    check_profile(profile)
    images = np.asarray(images)
    indices = np.asarray(indices)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(
            f"corrupt_images: expected uint8 images [N, H, W, 3], found {images.dtype} {images.shape}"
        )
    if images.shape[1] < 32 or images.shape[2] < 32:
        raise ValueError(
            f"corrupt_images: expected images of at least 32x32 pixels (imagecorruptions' limit), "
            f"found {images.shape[1]}x{images.shape[2]}"
        )
    if indices.shape != (images.shape[0],) or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"corrupt_images: expected integer indices [{images.shape[0]}], "
            f"found {indices.dtype} {indices.shape}"
        )
    out = np.empty_like(images)
    with _GLOBAL_RNG_LOCK:
        saved = np.random.get_state()
        try:
            for row, (image, index) in enumerate(zip(images, indices)):
                np.random.seed(image_seed(int(index), name, severity, seed))
                out[row] = apply_corruption(np.ascontiguousarray(image), name, severity, profile)
        finally:
            np.random.set_state(saved)
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:40]


def _write_json_atomic(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=1, sort_keys=True))


class CorruptedDataset(DerivedDataset):
    """A dataset seen through one generated corruption at one severity.

    Generation happens on first use (``images``, ``image_shape`` or
    :meth:`materialize`), not at construction, so a run whose predictions are
    already cached never pays for it. The view is stored in ``cache_dir`` as
    ``<key>.npy`` (uint8 [N, 3, H, W]) with a JSON sidecar ``<key>.json`` holding
    shape, byte size and sha256; both are written atomically
    (:func:`prunecheck.core.io.atomic_path`), the array first. Two processes generating the same view both write complete files and
    the last replace wins; the content is identical. On open the sidecar, header,
    shape and size are checked (and the sha256 for files up to
    ``HASH_VERIFY_MAX_BYTES``); a file that fails is regenerated.

    Args:
        base: the nominal dataset (images with H, W >= 32).
        name: one of ``ALL_CORRUPTIONS``.
        severity: 1..5.
        seed: run seed (part of the determinism key).
        cache_dir: folder for the cached view (created if missing).
        progress: called as ``progress(done, total)`` after each generated chunk.
        profile: "auto" (cifar for images of at most 64 x 64, else imagenet), "cifar" or
            "imagenet"; the resolved one is in ``self.profile`` and in the cache key.
    """

    def __init__(
        self,
        base: ImageDataset,
        name: str,
        severity: int,
        seed: int,
        cache_dir: Path,
        progress: Progress | None = None,
        profile: str = "auto",
    ):
        self.severity = _check_request(name, severity)
        super().__init__(base, corruption_view(name, self.severity))
        _, height, width = base.image_shape
        self.profile = resolve_profile(profile, height, width)
        self.corruption = name
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir)
        self.progress = progress
        self._fingerprint = digest(
            base.fingerprint(), "corruption", name, self.severity, self.seed, self.profile, GENERATOR_VERSION
        )
        stem = f"{_safe(base.name)}-{name}-s{self.severity}-{self.profile}-seed{self.seed}-{self._fingerprint}"
        self.path = self.cache_dir / f"{stem}.npy"
        self.sidecar = self.cache_dir / f"{stem}.json"
        self._array: np.ndarray | None = None

    def fingerprint(self) -> str:
        return self._fingerprint

    def images(self, indices: np.ndarray) -> torch.Tensor:
        array = self.materialize()
        rows = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(array[rows]))

    def materialize(self) -> np.ndarray:
        """Open the cached view, generating (or regenerating) it if needed.

        Returns:
            read-only memory-mapped uint8 [N, 3, H, W].
        """
        if self._array is None:
            array = self._open_verified()
            if array is None:
                with file_lock(self.path.with_name(self.path.name + ".lock")):
                    # another process (pytest-xdist worker) may have generated it meanwhile
                    array = self._open_verified()
                    if array is None:
                        self._generate()
                        array = self._open_verified()
                if array is None:
                    raise CacheError(
                        f"corruption cache {self.path}: freshly written file failed verification "
                        "(disk full or concurrent deletion?)"
                    )
            self._array = array
        return self._array

    def _open_verified(self) -> np.ndarray | None:
        if not (self.path.is_file() and self.sidecar.is_file()):
            return None
        try:
            meta = json.loads(self.sidecar.read_text())
            expected_shape = [len(self.base), *meta["shape"][1:]]
            if meta["shape"] != expected_shape or meta.get("dtype") != "uint8":
                return None
            if self.path.stat().st_size != int(meta["size_bytes"]):
                return None
            if meta["size_bytes"] <= HASH_VERIFY_MAX_BYTES and file_sha256(self.path) != meta["sha256"]:
                return None
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            return None
        if array.dtype != np.uint8 or list(array.shape) != meta["shape"]:
            return None
        return array

    def _corrupt_rows(self, rows: np.ndarray) -> np.ndarray:
        """Corrupted images of the dataset rows ``rows``: uint8 [len(rows), 3, H, W].

        The one step a backend overrides (see :mod:`prunecheck.data.corruptions.torch_backend`).
        """
        batch = self.base.images(rows).numpy().transpose(0, 2, 3, 1)
        corrupted = corrupt_images(batch, rows, self.corruption, self.severity, self.seed, self.profile)
        return corrupted.transpose(0, 3, 1, 2)

    def _generate(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        total = len(self.base)
        probe = self.base.images(np.arange(min(total, 1)))
        shape = (total, 3, *probe.shape[2:]) if total else (0, 3, 32, 32)
        with atomic_path(self.path) as tmp:  # a memmap needs a file name, not a handle
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for start in range(0, total, CHUNK_SIZE):
                rows = np.arange(start, min(start + CHUNK_SIZE, total))
                out[start : start + len(rows)] = self._corrupt_rows(rows)
                if self.progress is not None:
                    self.progress(start + len(rows), total)
            out.flush()
            del out
            size = tmp.stat().st_size
            sha = file_sha256(tmp)
        _write_json_atomic(
            self.sidecar,
            {
                "shape": list(shape),
                "dtype": "uint8",
                "size_bytes": size,
                "sha256": sha,
                "base_fingerprint": self.base.fingerprint(),
                "corruption": self.corruption,
                "severity": self.severity,
                "seed": self.seed,
                "profile": self.profile,
                "generator_version": GENERATOR_VERSION,
            },
        )
