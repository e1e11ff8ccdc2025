"""The errors channel users see: RemoteError and the channel TimeoutError."""

from __future__ import annotations

import os
import sys

__all__ = ["ChannelCallbackError", "ChannelClosedError", "RemoteError", "TimeoutError"]


class RemoteError(Exception):
    """The code at the other end of a channel failed; ``str()`` is its traceback text.

    >>> try:
    ...     raise RemoteError("Traceback ...\\nZeroDivisionError: division by zero")
    ... except RemoteError as err:
    ...     assert "ZeroDivisionError" in str(err)
    """

    def __init__(self, formatted: str) -> None:
        super().__init__(formatted)
        self.formatted = formatted

    def __str__(self) -> str:
        return self.formatted

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: {self.formatted}"

    def warn(self) -> None:
        """Write this error to stderr (used for errors nobody received)."""
        sys.stderr.write(f"[{os.getpid()}] Warning: unhandled {self!r}\n")


class TimeoutError(IOError):
    """A channel operation did not complete within its timeout (an IOError subclass).

    >>> issubclass(TimeoutError, IOError)
    True
    """


class ChannelClosedError(OSError, ValueError):
    """send() on a channel that is closed for sending: both an OSError and a ValueError.

    pytest-xdist catches OSError; the documents also promise ValueError for this misuse.

    >>> issubclass(ChannelClosedError, OSError) and issubclass(ChannelClosedError, ValueError)
    True
    """


class ChannelCallbackError(OSError, ValueError):
    """receive() (or a second setcallback()) on a channel whose items go to a callback.

    An OSError (IOError) as in execnet 2.1.2, whose users write
    ``except IOError`` around it; also a ValueError, since it is a misuse.

    >>> issubclass(ChannelCallbackError, OSError) and issubclass(ChannelCallbackError, ValueError)
    True
    """
