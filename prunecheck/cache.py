"""On-disk prediction cache: atomic writes, verified reads, safe across processes.

One entry is one ``.npz`` file named by its key. Writes go to a temporary file
in the same directory, are fsynced and then ``os.replace``d into place (:mod:`prunecheck.atomic`), so a
reader (another pytest-xdist worker, a later run) sees either nothing or a
complete file. Reads are verified: the zip member CRCs are checked by numpy on
load and the stored key and shapes must match, so a truncated or foreign file
is reported as a miss (and then recomputed and replaced), never trusted.
No pickles: arrays are saved and loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunecheck.atomic import atomic_file
from prunecheck.errors import CacheError


def cache_key(*parts: object) -> str:
    """sha256 hex over the text of ``parts``: the cache key of one entry."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    repaired: int = 0  # entries found damaged and recomputed
    writes: int = 0
    damaged: list[str] = field(default_factory=list)


class ArrayCache:
    """A directory of verified ``.npz`` entries keyed by :func:`cache_key`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.stats = CacheStats()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None on a miss or a damaged entry."""
        path = self.path(key)
        if not path.exists():
            self.stats.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}  # reading checks CRCs
            stored_key = arrays.pop("__key__", None)
            if stored_key is None or str(stored_key) != key:
                raise ValueError("stored key does not match the file name")
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
            self.stats.misses += 1
            self.stats.repaired += 1
            self.stats.damaged.append(f"{path}: {exc}")
            return None
        self.stats.hits += 1
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Store ``arrays`` atomically under ``key`` (last writer wins, both complete)."""
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as handle:
                np.savez(handle, __key__=np.array(key), **arrays)
        except OSError as exc:
            raise CacheError(f"cannot write cache entry {path}: {exc}") from exc
        self.stats.writes += 1
        return path
