"""On-disk prediction cache: atomic writes, verified reads, safe across processes.

One entry is one ``.npz`` file named by its key. Writes go to a temporary file
in the same directory, are fsynced and then ``os.replace``d into place (:mod:`prunecheck.core.io`), so a
reader (another pytest-xdist worker, a later run) sees either nothing or a
complete file. Reads are verified: the zip member CRCs are checked by numpy on
load and the stored key and shapes must match, so a truncated or foreign file
is reported as a miss (and then recomputed and replaced), never trusted.
No pickles: arrays are saved and loaded with ``allow_pickle=False``.

The entry format (:func:`encode_entry` / :func:`decode_entry`) is shared with the
object-store backend (:mod:`prunecheck.engine.remote`); both offer ``get``, ``put``,
``delete``, ``signature`` (what changed since the last look) and ``lock_dir``
(where same-host processes take per-key locks).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunecheck.core.errors import CacheError
from prunecheck.core.io import atomic_file


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    repaired: int = 0  # entries found damaged and recomputed
    writes: int = 0
    damaged: list[str] = field(default_factory=list)

    def decode(self, key: str, handle, where: str) -> dict[str, np.ndarray] | None:
        """The arrays of entry ``key`` read from ``handle``, counted as a hit; None, counted
        as a miss and a repair (``where`` names it in ``damaged``), when the entry is damaged."""
        try:
            arrays = decode_entry(key, handle)
        except DECODE_ERRORS as exc:
            self.misses += 1
            self.repaired += 1
            self.damaged.append(f"{where}: {exc}")
            return None
        self.hits += 1
        return arrays


DECODE_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError)


def encode_entry(key: str, arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of one entry: an uncompressed ``.npz`` holding ``arrays`` and the key."""
    buffer = io.BytesIO()
    np.savez(buffer, __key__=np.array(key), **arrays)
    return buffer.getvalue()


def decode_entry(key: str, handle) -> dict[str, np.ndarray]:
    """The arrays of an entry read from ``handle`` (a path or file object).

    Raises one of :data:`DECODE_ERRORS` when the entry is truncated, fails a zip CRC,
    or was stored under another key.
    """
    with np.load(handle, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}  # reading checks CRCs
    stored_key = arrays.pop("__key__", None)
    if stored_key is None or str(stored_key) != key:
        raise ValueError("stored key does not match the entry name")
    return arrays


class ArrayCache:
    """A directory of verified ``.npz`` entries keyed by :func:`cache_key`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.stats = CacheStats()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"

    @property
    def location(self) -> str:
        return str(self.root)

    def signature(self, key: str) -> tuple[int, int] | None:
        """(mtime_ns, size) of the entry, or None when there is none."""
        try:
            stat = self.path(key).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None on a miss or a damaged entry."""
        path = self.path(key)
        if not path.exists():
            self.stats.misses += 1
            return None
        return self.stats.decode(key, path, str(path))

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Store ``arrays`` atomically under ``key`` (last writer wins, both complete)."""
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as handle:
                handle.write(encode_entry(key, arrays))
        except OSError as exc:
            raise CacheError(f"cannot write cache entry {path}: {exc}") from exc
        self.stats.writes += 1
        return path
