"""File io every layer shares: atomic writes, one cross-process file lock, content keys.

Atomic writes: a reader sees the old file or the complete new one, never a part.

Every file prunecheck writes for later runs or other processes (cache entries,
reports, checkpoints, manifests, generated corruption arrays) goes through
:func:`atomic_file` (a handle) or :func:`atomic_path` (a file name, for numpy
memmaps): written to a temporary file in the same folder, fsynced, then
``os.replace``d into place and the folder fsynced; on any error the temporary
file is removed and the target is untouched.
The file gets the permissions of a plain ``open`` (0666 minus the umask), not the
0600 of a temporary file, so CI artifact uploaders and teammates can read reports
and caches.

Folders: :func:`built_directory` builds a whole folder (the demo zoo) next to its
target and swaps it into place, so readers see the old folder or the complete new one.

Locks: :func:`file_lock` is the one cross-process lock (prediction cache keys,
the demo zoo, corruption entries).

Keys: :func:`cache_key` is the one content hash (prediction cache entries; dataset
fingerprints use its first 16 hex digits); :func:`derived_seed` turns one into an
RNG seed (noise views, MC dropout); :func:`file_sha256` hashes a file's bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file next to ``path``, for writers that need a file name (numpy memmaps).

    The caller writes the yielded path; on success it is fsynced and replaces
    ``path``, and the folder is fsynced so the rename survives a crash. On any
    error the temporary file is removed and ``path`` is untouched.

    Args:
        path: the target file (its folder must exist).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        try:
            if hasattr(os, "fchmod"):  # mkstemp creates 0600
                os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        _fsync(tmp, os.O_RDWR)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, os.O_RDONLY)


def _fsync(path: Path, flags: int) -> None:
    """fsync a file or folder by name; folders that cannot be opened (Windows) are skipped."""
    try:
        fd = os.open(path, flags)
    except OSError:
        if flags == os.O_RDONLY:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if flags != os.O_RDONLY:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` (:func:`atomic_path`).

    Args:
        path: the target file (its folder must exist).
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_file(path, "w") as handle:
        handle.write(text)


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Exclusive advisory lock (``fcntl.flock``) on ``path``, created with its folder if missing.

    Yields True while the lock is held; False at once when ``blocking`` is off and
    another process holds it. Without ``fcntl`` (non-POSIX) there is no
    cross-process lock and it yields True.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
        yield True
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def cache_key(*parts: object) -> str:
    """sha256 hex over the text of ``parts``: the cache key of one entry."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes, read in 4 MiB blocks (verifying cached arrays and archives)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def derived_seed(*parts: object) -> int:
    """A 60-bit RNG seed from ``parts`` (the first 15 hex digits of :func:`cache_key`).

    Seeds derived this way depend only on what they name (run seed, view, block or
    batch index), never on the order in which draws happen.
    """
    return int(cache_key(*parts)[:15], 16)


@contextmanager
def built_directory(target: Path, label: str = "build") -> Iterator[Path]:
    """A temporary folder next to ``target`` to fill; on success it replaces ``target``.

    The old folder (if any) is moved aside and removed after the swap; on any error the
    temporary folder is removed and ``target`` is untouched. Callers hold a
    :func:`file_lock` when other processes may build the same folder.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{label}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            os.replace(target, stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
