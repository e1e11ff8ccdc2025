"""Tracing controlled by EXECNET_DEBUG: "1" writes a file per process, "2" writes to stderr."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Optional

__all__ = ["trace", "trace_enabled"]

_stream: Optional[IO[str]] = None
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
    global _stream
    if _mode is None:
        return
    if _stream is None:
        if _mode == "2":
            # the process's own stderr: user code may point sys.stderr at a channel
            _stream = sys.__stderr__ or sys.stderr
        else:
            import tempfile  # only now: it is slow to import

            path = os.path.join(tempfile.gettempdir(), f"execnet-debug-{os.getpid()}")
            _stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    line = " ".join(str(arg) for arg in args)
    try:
        _stream.write(f"[{os.getpid()}] {line}\n")
        _stream.flush()
    except (OSError, ValueError):
        pass  # tracing must never break the protocol


_mode = _configure()
