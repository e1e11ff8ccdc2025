"""Reading source files so that a file changing under us is noticed, never sent torn.

A file is opened once (without following a link that replaced it), fstat'ed before and
after it is read; if its size or mtime moved, or the bytes read are not its size, the
read does not count. Small files are read whole; large ones are handed out in pieces so
memory stays flat however large the file.

File systems stamp mtimes from a coarse clock (one tick is 1-10 ms), so a write landing
in the same tick as the previous one leaves the mtime as it was. A file whose mtime is
that recent when we start reading is "racy": it is read a second time and must come back
the same (bytes for small files, sha256 for streamed ones). Files at rest, the common
case, are read once.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator

CHUNK = 1 << 20  # one frame's worth: large enough that per-message costs vanish
RACY_NS = 40_000_000  # several ticks of the coarsest file-system clock (HZ=100: 10 ms)

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
        started = time.time_ns()
        self.path = path
        self.fd = os.open(path, _OPEN_FLAGS)
        try:
            self.stat = os.fstat(self.fd)
            if not stat.S_ISREG(self.stat.st_mode):
                raise NotRegularFile(f"{path!r} is no longer a regular file")
        except BaseException:
            os.close(self.fd)
            raise
        self.racy = self.stat.st_mtime_ns >= started - RACY_NS

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

    def _check(self, count: int) -> None:
        if not _same(self.stat, os.fstat(self.fd), count):
            raise ChangedWhileReading("changed while being read")

    def read_whole(self) -> bytes:
        """The whole content; ChangedWhileReading if it moved meanwhile."""
        data = self._read_all()
        if self.racy:
            os.lseek(self.fd, 0, os.SEEK_SET)
            if self._read_all() != data:
                raise ChangedWhileReading("changed while being read")
        return data

    def _read_all(self) -> bytes:
        # Growth while reading shows in the second fstat (size), so `size` bytes suffice.
        size = self.stat.st_size
        data = os.read(self.fd, size) if size else b""
        if 0 < len(data) < size:  # a short read: file systems may return less than asked
            parts = [data]
            got = len(data)
            while got < size:
                block = os.read(self.fd, size - got)
                if not block:
                    break
                parts.append(block)
                got += len(block)
            data = b"".join(parts)
        self._check(len(data))
        return data

    def pieces(self, size: int = CHUNK) -> Iterator[bytes]:
        """The content in pieces; after the last, ChangedWhileReading if it moved."""
        first = hashlib.sha256() if self.racy else None
        total = 0
        while True:
            block = os.read(self.fd, size)
            if not block:
                break
            total += len(block)
            if total > self.stat.st_size:
                break  # grew: _check below refuses it
            if first is not None:
                first.update(block)
            yield block
        self._check(total)
        if first is not None:
            os.lseek(self.fd, 0, os.SEEK_SET)
            self.racy = False
            if self.digest() != first.digest():
                raise ChangedWhileReading("changed while being read")

    def digest(self) -> bytes:
        """sha256 of the content, as the receiver computes it."""
        h = hashlib.sha256()
        for block in self.pieces():
            h.update(block)
        return h.digest()
