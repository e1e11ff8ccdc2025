"""Tracing controlled by EXECNET_DEBUG: "1" writes a file per process, "2" writes to stderr.

The trace file is ``execnet-debug-PID`` in the temp directory, a place every local user
can write to and whose names anyone can predict. So it is created the safe way: with
O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (never through a link someone planted, never
readable by others). A name that is taken already is used only if it is a regular file
of this user with no other link (a trace of an earlier process with this pid, appended
to as before, its mode made 0600); anything else (a symlink, another user's file, a
FIFO) is left alone, and the trace goes to a fresh ``execnet-debug-PID-XXXXXXXX``
(``tempfile.mkstemp``) named in one line on stderr.
"""

from __future__ import annotations

import os
import sys

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import IO, Optional

__all__ = ["trace", "trace_enabled"]

_stream: Optional[IO[str]] = None
_stream_pid = 0  # the process that opened _stream (a forked child opens its own file)
_mode: Optional[str] = None


def _configure() -> Optional[str]:
    value = os.environ.get("EXECNET_DEBUG", "").strip()
    return value if value in ("1", "2") else None


def trace_enabled() -> bool:
    """True when EXECNET_DEBUG asks for tracing ("1" or "2"; "0" and empty mean off)."""
    return _mode is not None


def trace(*args: object) -> None:
    """Write one trace line naming this process, if EXECNET_DEBUG is "1" or "2".

    >>> trace("gateway", "gw0", "started")   # no output unless EXECNET_DEBUG is set
    """
    global _stream, _stream_pid
    if _mode is None:
        return
    pid = os.getpid()
    if _stream is None or _stream_pid != pid:
        _stream_pid = pid
        if _mode == "2":
            # the process's own stderr: user code may point sys.stderr at a channel
            _stream = sys.__stderr__ or sys.stderr
        else:
            try:
                _stream = _open_trace_file(pid)
            except OSError as exc:  # tracing must never break the protocol
                _stream = sys.__stderr__ or sys.stderr
                _stream.write(
                    f"[{pid}] execnet: cannot create a trace file ({exc}); tracing here\n"
                )
    line = " ".join(str(arg) for arg in args)
    try:
        _stream.write(f"[{pid}] {line}\n")
        _stream.flush()
    except (OSError, ValueError):
        pass  # tracing must never break the protocol


def _open_trace_file(pid: int) -> IO[str]:
    """This process's trace file, opened for appending (see the module docstring)."""
    import tempfile  # only now: it is slow to import

    directory = tempfile.gettempdir()
    path = os.path.join(directory, f"execnet-debug-{pid}")
    fd = _open_own_file(path)
    if fd is None:
        fd, fallback = tempfile.mkstemp(prefix=f"execnet-debug-{pid}-", dir=directory)
        (sys.__stderr__ or sys.stderr).write(
            f"[{pid}] execnet: {path} exists and is not this user's own file (a link, "
            f"another user's file?): not touched; tracing to {fallback}\n"
        )
    return os.fdopen(fd, "a", buffering=1)


def _open_own_file(path: str) -> Optional[int]:
    """A descriptor of ``path`` for appending, created 0600 if missing, or reused if it
    is a regular file of this user with one link; None for anything else."""
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    # O_NONBLOCK: a FIFO planted under this name must not block the open.
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None  # a symlink (O_NOFOLLOW: ELOOP), not writable, a FIFO without reader
    import stat

    info = os.fstat(fd)
    geteuid = getattr(os, "geteuid", None)
    if (
        not stat.S_ISREG(info.st_mode)
        or (geteuid is not None and info.st_uid != geteuid())
        or info.st_nlink != 1
    ):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)
    return fd


_mode = _configure()
