"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

Every file prunecheck writes for later runs or other processes (cache entries,
reports, checkpoints, manifests) goes through :func:`atomic_file`: written to a
temporary file in the same folder, flushed and fsynced, then ``os.replace``d into
place; on any error the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path``.

    Args:
        path: the target file (its folder must exist).
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_file(path, "w") as handle:
        handle.write(text)
