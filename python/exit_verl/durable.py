"""Crash-safe file writes.

`write_atomic` writes into a fresh temporary file beside the target — created exclusively, with
a random name, never through a symlink (`tempfile.mkstemp`) — fsyncs it, renames it over the
target and fsyncs the folder. A process killed at any moment leaves either the old file or the
new one (and at worst a stray `.<name>.*.tmp` file, which nothing reads).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replaces `path` with `data` atomically and durably (see the module docstring)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)  # replaces a symlink at `target` itself, never its referent
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(target.parent)


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Makes a rename or unlink inside `folder` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
