"""Reading source files so that a file changing under us is noticed, never sent torn.

A file is opened once (without following a link that replaced it), fstat'ed before and
after it is read; if its size or mtime moved, or the bytes read are not its size, the
read does not count. Small files are read whole; large ones are handed out in pieces so
memory stays flat however large the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator

CHUNK = 1 << 20  # one frame's worth: large enough that per-message costs vanish

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


class ChangedWhileReading(Exception):
    """The file's size or mtime moved while it was read."""


class NotRegularFile(Exception):
    """The path no longer names a regular file."""


def _same(before: os.stat_result, after: os.stat_result, count: int) -> bool:
    return after.st_size == before.st_size == count and after.st_mtime_ns == before.st_mtime_ns


class SourceFile:
    """An open source file: ``with SourceFile(path) as f: f.stat, f.read_whole()``."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, _OPEN_FLAGS)
        try:
            self.stat = os.fstat(self.fd)
            if not stat.S_ISREG(self.stat.st_mode):
                raise NotRegularFile(f"{path!r} is no longer a regular file")
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

    def _check(self, count: int) -> None:
        if not _same(self.stat, os.fstat(self.fd), count):
            raise ChangedWhileReading("changed while being read")

    def read_whole(self) -> bytes:
        """The whole content; ChangedWhileReading if it moved meanwhile."""
        want = self.stat.st_size + 1  # one byte more than expected reveals growth
        parts = []
        got = 0
        while got < want:
            block = os.read(self.fd, want - got)
            if not block:
                break
            parts.append(block)
            got += len(block)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._check(len(data))
        return data

    def pieces(self, size: int = CHUNK) -> Iterator[bytes]:
        """The content in pieces; after the last, ChangedWhileReading if it moved."""
        total = 0
        while True:
            block = os.read(self.fd, size)
            if not block:
                break
            total += len(block)
            if total > self.stat.st_size:
                break  # grew: _check below refuses it
            yield block
        self._check(total)

    def digest(self) -> bytes:
        """sha256 of the content, as the receiver computes it."""
        h = hashlib.sha256()
        for block in self.pieces():
            h.update(block)
        return h.digest()
