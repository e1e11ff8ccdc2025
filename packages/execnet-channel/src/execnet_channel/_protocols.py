"""The Protocols of this layer: what a transport provides (IO, BufferedIO) and what an
execution model's primitives offer (LockLike, EventLike, QueueLike).

They live apart because only type checkers and the opener need them: the modules a
remote interpreter imports never import this one (nor ``typing``), which keeps the
start of every remote short. ``execnet_channel.IO`` and ``.BufferedIO`` load it on
first use.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Sequence, Union, runtime_checkable

from ._execmodels import ExecModel

__all__ = ["IO", "BufferedIO", "EventLike", "LockLike", "QueueLike"]


class LockLike(Protocol):
    """What Lock() and RLock() return."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *args: Any) -> Any: ...


class EventLike(Protocol):
    """What Event() returns."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: Optional[float] = None) -> bool: ...


class QueueLike(Protocol):
    """The unbounded FIFO a channel keeps its items in (``ExecModel._queue()``)."""

    def put(self, item: Any) -> None: ...
    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any: ...
    def qsize(self) -> int: ...


@runtime_checkable
class IO(Protocol):
    """What a transport provides to a gateway: a two-way byte stream.

    ``read`` returns exactly ``numbytes`` bytes or raises EOFError when the stream ends
    first; ``write`` writes all of ``data`` or raises OSError once the stream is gone.

    >>> import os
    >>> r, w = os.pipe()
    >>> from execnet_channel import FdIO
    >>> isinstance(FdIO(r, w), IO)
    True
    """

    execmodel: ExecModel

    def read(self, numbytes: int) -> bytes:
        """Exactly ``numbytes`` bytes; EOFError if the stream ends first."""
        ...

    def write(self, data: bytes) -> None:
        """Write all of ``data``; OSError once the stream is gone."""
        ...

    def close_read(self) -> None:
        """Stop reading (idempotent); a read after it raises EOFError."""
        ...

    def close_write(self) -> None:
        """Close the sending direction (idempotent): the other side reads EOF."""
        ...

    def wait(self) -> Optional[int]:
        """Wait for the process behind the stream; its exit status (None: no process)."""
        ...

    def kill(self) -> None:
        """Kill the process behind the stream, if there is one."""
        ...


@runtime_checkable
class BufferedIO(IO, Protocol):
    """An IO that can also read into a buffer and write several buffers in one call."""

    def readinto(self, buffer: memoryview) -> int:
        """Read at least one byte into ``buffer``; EOFError at the end of the stream."""
        ...

    def writev(self, buffers: Sequence[Union[bytes, bytearray, memoryview]]) -> None:
        """Write all of ``buffers``, in order, as if joined."""
        ...
