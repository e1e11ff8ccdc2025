"""The errors channel users see: RemoteError and the channel TimeoutError."""

from __future__ import annotations

import os
import sys

__all__ = [
    "ChannelCallbackError",
    "ChannelClosedError",
    "NotProperlyTerminated",
    "RemoteError",
    "TimeoutError",
]


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


class NotProperlyTerminated(Exception):
    """What ``Channel._getremoteerror()`` returns when the remote died under the channel.

    pytest-xdist 3.8.0 reads ``_getremoteerror()`` when a worker's channel ends and
    replaces anything that is an EOFError (or empty) with the fixed text "Not properly
    terminated". So that its users see *why* a worker went away, the hook returns this
    object instead: not an EOFError, its text starts with that same phrase and goes on
    with the post-mortem (exit status or signal, pid, last lines of stderr). Every public
    path (``receive()``, ``waitclose()``, ...) still raises the EOFError, ``.eof`` here.

    >>> err = NotProperlyTerminated("exit status 3 (pid 42)", EOFError("connection lost"))
    >>> str(err)
    'Not properly terminated: exit status 3 (pid 42)'
    >>> isinstance(err, EOFError), type(err.eof).__name__
    (False, 'EOFError')
    """

    def __init__(self, postmortem: str, eof: EOFError) -> None:
        super().__init__(postmortem, eof)
        self.postmortem = postmortem
        self.eof = eof

    def __str__(self) -> str:
        return f"Not properly terminated: {self.postmortem}"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.postmortem!r})"
