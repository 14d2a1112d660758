"""Prediction cache on any fsspec filesystem: S3, GCS, a shared mount, ``file://``.

Several runners (CI jobs, GPU hosts) read and fill one cache. Entries are the
same verified ``.npz`` bytes as the local cache (:func:`prunecheck.engine.cache.encode_entry`),
named by their content key, so two writers of one key write the same content
and the last complete write wins:

- object stores (``s3``, ``gs``, ``az`` ...) get each entry in one PUT, which
  makes the object visible only once complete;
- other filesystems get a temporary name in the same folder, then a rename.

A truncated, corrupted or foreign object fails the zip CRC or key check on
read and is reported as a miss (then recomputed and overwritten), never trusted.
Per-key locks are taken in a local folder: they keep the processes of one host
(pytest-xdist workers) from computing the same entry twice; across hosts an
entry may be computed twice, which costs time but never changes a number.

fsspec (and s3fs for ``s3://``) come with the optional extra ``prunecheck[remote]``.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from prunecheck.core.errors import CacheError
from prunecheck.core.io import cache_key
from prunecheck.engine.cache import ArrayCache, CacheStats, encode_entry

#: Protocols whose single PUT is atomic (no rename needed, and none available cheaply).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def open_cache(location: str | Path, *, storage_options: dict[str, Any] | None = None) -> "ArrayCache | FsspecArrayCache":
    """The prediction cache at ``location``: a folder, ``file://`` URL, or any fsspec URL."""
    text = str(location)
    if not is_url(text):
        return ArrayCache(Path(text).expanduser())
    if text.startswith("file://"):
        return ArrayCache(Path(text[len("file://"):]).expanduser())
    return FsspecArrayCache(text, storage_options=storage_options)


class FsspecArrayCache:
    """Verified entries under an fsspec URL; the interface of :class:`prunecheck.engine.cache.ArrayCache`."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None, lock_dir: Path | None = None):
        try:
            import fsspec
        except ImportError as exc:
            raise CacheError(
                f"prediction cache {url!r}: a URL cache needs fsspec (and s3fs for s3://); "
                "install prunecheck[remote]"
            ) from exc
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise CacheError(f"prediction cache {url!r}: {exc} (install prunecheck[remote])") from exc
        self.root = root.rstrip("/")
        self.url = url
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.single_put = bool(OBJECT_STORES.intersection(protocols))
        self.stats = CacheStats()
        self._lock_dir = None if lock_dir is None else Path(lock_dir)

    @property
    def location(self) -> str:
        return self.url

    @property
    def lock_dir(self) -> Path:
        """A local folder per cache URL: locks coordinate the processes of this host."""
        if self._lock_dir is not None:
            return self._lock_dir
        return Path(tempfile.gettempdir()) / "prunecheck-locks" / cache_key(self.url)[:16]

    def path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.npz"

    def signature(self, key: str) -> tuple | None:
        """(ETag or mtime, size) of the object, or None when there is none."""
        path = self.path(key)
        self.fs.invalidate_cache(path)  # a listing cached earlier may predate another writer
        try:
            info = self.fs.info(path)
        except (FileNotFoundError, OSError):
            return None
        tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or info.get("created")
        return (str(tag), int(info.get("size") or 0))

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None on a miss or a damaged object."""
        path = self.path(key)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except OSError as exc:
            raise CacheError(f"cannot read cache object {self.url}: {path}: {exc}") from exc
        return self.stats.decode(key, io.BytesIO(data), path)

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> str:
        """Store ``arrays`` under ``key``: one PUT on object stores, else write then rename."""
        path = self.path(key)
        data = encode_entry(key, arrays)
        try:
            if self.single_put:
                self.fs.pipe_file(path, data)
            else:
                folder = path.rsplit("/", 1)[0]
                self.fs.makedirs(folder, exist_ok=True)
                temporary = f"{folder}/.{key}.{uuid.uuid4().hex}.tmp"
                try:
                    self.fs.pipe_file(temporary, data)
                    self.fs.mv(temporary, path)
                except BaseException:
                    try:
                        self.fs.rm_file(temporary)
                    except (FileNotFoundError, OSError):
                        pass
                    raise
        except OSError as exc:
            raise CacheError(f"cannot write cache object {self.url}: {path}: {exc}") from exc
        self.stats.writes += 1
        return path

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self.path(key))
        except (FileNotFoundError, OSError):
            pass
