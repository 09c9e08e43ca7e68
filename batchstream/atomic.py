"""Replacing a file atomically: a reader, or a run after a crash, sees the old file or the new one, not half.

Every file batchstream rewrites (the results file when it drops or reorders lines, the summary, a merge's
output) goes through here, so all of them get the same care: a temp name no other writer can share, the data
and the rename made durable, and no temp file left behind by a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "fsync_directory"]


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces `path` when the block ends without an exception.

    The temp file sits in the target's directory (a rename across file systems is not atomic) under a name
    with the pid and random bits, created with O_EXCL: two writers, or one after a crash, never share it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 honours the umask, as a plain open() would, unlike mkstemp's fixed 0o600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the rename itself durable, where the platform lets a directory be fsynced."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
