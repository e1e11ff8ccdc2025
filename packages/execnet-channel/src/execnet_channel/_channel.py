"""Channel: one two-way, ordered stream of items between the two ends of a gateway."""

from __future__ import annotations

import os
import sys

from . import _frames
from ._errors import ChannelCallbackError, ChannelClosedError, RemoteError, TimeoutError
from ._receiving import ROLE_FREE
from ._startup import TYPE_CHECKING

_TimeoutError = TimeoutError  # the class attribute of Channel shadows the name there

if TYPE_CHECKING:
    from typing import (
        Any,
        Callable,
        Iterator,
        List,
        Literal,
        NoReturn,
        Optional,
        Tuple,
        Type,
        TypeVar,
        Union,
        overload,
    )

    from ._gateway import BaseGateway
    from ._protocols import EventLike, QueueLike

    _File = TypeVar("_File", bound="_ChannelFile")


__all__ = ["NO_ENDMARKER", "Channel", "ChannelFileRead", "ChannelFileWrite"]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: the default endmarker of setcallback: no end call at all
NO_ENDMARKER: Any = _Marker("NO_ENDMARKER")
_ENDMARKER: Any = _Marker("ENDMARKER")  # in a channel's queue: nothing follows


class Channel:
    """One ordered stream of items to and from the other end of a gateway.

    Made by ``gateway.remote_exec`` (the remote code's global ``channel`` is its other
    end) or ``gateway.newchannel()`` (sent through another channel). Both ends in one
    process here:

    >>> import os, threading
    >>> from execnet_channel import BaseGateway, FdIO, serve
    >>> (r1, w1), (r2, w2) = os.pipe(), os.pipe()
    >>> remote = threading.Thread(
    ...     target=serve, args=(FdIO(r2, w1), "remote"), kwargs={"exit_process": False}
    ... )
    >>> remote.start()
    >>> gateway = BaseGateway(FdIO(r1, w2), "gw0", opener=True)
    >>> channel = gateway.remote_exec(
    ...     "for item in channel:\\n"
    ...     "    channel.send(item + 1)\\n"
    ... )
    >>> channel.send(1); channel.receive(10)
    2
    >>> channel.close(); channel.waitclose(10)
    >>> channel.receive(10)
    Traceback (most recent call last):
    ...
    EOFError: channel 1 is closed

    Files over channels (``makefile``): what is written goes as items, lines are read
    back from them:

    >>> channel = gateway.remote_exec(
    ...     "lines = channel.makefile('r')\\n"
    ...     "channel.send(lines.readline() + 'second')\\n"
    ... )
    >>> print("first", file=channel.makefile("w"))  # sends "first" and "\\n"
    >>> answer = channel.makefile("r")
    >>> answer.readline(), answer.read()
    ('first\\n', 'second')
    >>> gateway.exit(); gateway.join(10); remote.join(10)
    """

    RemoteError = RemoteError
    TimeoutError = TimeoutError

    def __init__(self, gateway: BaseGateway, id: int) -> None:
        self.gateway = gateway
        self.id = id
        model = gateway.execmodel
        self._items: QueueLike = model._queue()
        self._empty: Type[BaseException] = model._queue_empty()
        self._closed_event: EventLike = model._event()
        self._callback: Optional[Callable[[Any], object]] = None
        self._endmarker: Any = NO_ENDMARKER
        self._endmarker_done = False
        self._callback_failed_already = False
        self._end_queued = False
        self._closed = False  # closed for sending (by us, or the other side closed it)
        self._sent_close = False  # we sent CLOSE/CLOSE_ERROR
        self._receive_closed = False  # the other side sends nothing more
        self._remoteerror: Optional[BaseException] = None
        self._error_seen = False
        self._executing = False  # inside remote_exec code on this side
        self._strconfig: Optional[Tuple[bool, bool]] = None

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self._receive_closed:
            state = "sendonly"
        else:
            state = "open"
        return f"<Channel id={self.id} {state}>"

    def __del__(self) -> None:
        try:
            self.gateway._channel_collected(self)
            if isinstance(self._remoteerror, RemoteError) and not self._error_seen:
                self._remoteerror.warn()
        except Exception:
            pass  # interpreter shutdown: nothing left to tell

    # -- sending ---------------------------------------------------------------------

    def send(self, item: object) -> None:
        """Send ``item`` (any value execnet_serial dumps, channels included).

        DumpError if it does not serialize; OSError (also a ValueError) if the channel
        is closed for sending; OSError if the connection is gone.
        """
        if self._closed:
            raise ChannelClosedError(f"cannot send to {self!r}: it is closed")
        self.gateway._send_item(self.id, item)

    # -- receiving -------------------------------------------------------------------

    def receive(self, timeout: Optional[float] = None) -> Any:
        """The next item; waits at most ``timeout`` seconds (None: forever).

        Raises Channel.TimeoutError after the timeout, Channel.RemoteError if the other
        side failed, EOFError once the channel is closed and every item was received,
        ChannelCallbackError (an OSError) if the channel has a callback.
        """
        if self._callback is not None:
            raise ChannelCallbackError(f"cannot receive(): {self!r} has a callback")
        watch = self.gateway._watch_wait
        if watch is None or self._items.qsize():
            item = self._next_item(timeout)
        else:  # a main_thread_only task is about to wait for the other side
            item = watch(self._next_item, timeout)
        if item is _ENDMARKER:
            self._ended()
        return item

    def _ended(self) -> NoReturn:
        """receive() took the end: leave it for every later receive(), which ends the
        same way, and raise the other side's error or EOFError."""
        self._items.put(_ENDMARKER)
        error = self._remoteerror
        if error is not None:
            self._error_seen = True
            raise error
        raise EOFError(f"channel {self.id} is closed")

    def _next_item(self, timeout: Optional[float]) -> Any:
        """The next thing in the queue (an item or _ENDMARKER), waiting for it."""
        if self.gateway._lendable:
            return self.gateway._receive_item(self, timeout)
        try:
            return self._items.get(True, timeout)
        except self._empty:
            raise self._timed_out(timeout) from None

    def _timed_out(self, timeout: Optional[float]) -> _TimeoutError:
        return self.TimeoutError(f"no item after {timeout} seconds on channel {self.id}")

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self.receive()
        except EOFError:
            raise StopIteration from None

    def setcallback(self, callback: Callable[[Any], object], endmarker: Any = NO_ENDMARKER) -> None:
        """Pass every item to ``callback`` instead of queueing it.

        Items already queued go to it at once (in this thread), later ones in the
        receiver. When the channel closes (also when the connection is lost) the
        callback gets ``endmarker`` once, if one is given. A callback that raises
        closes the channel with that error; the traceback is reported once on stderr.
        """
        gateway = self.gateway
        gateway._give_back()  # callbacks run in the receiver
        with gateway._receivelock:
            if self._callback is not None:
                raise ChannelCallbackError(f"{self!r} already has a callback")
            self._callback = callback
            self._endmarker = endmarker
            gateway._keep_for_callback(self)
            closed = False
            while True:
                try:
                    item = self._items.get(block=False)
                except self._empty:
                    break
                if item is _ENDMARKER:
                    closed = True
                    self._items.put(_ENDMARKER)
                    break
                if item is not ROLE_FREE:
                    self._call(item)
            if closed:
                self._fire_endmarker()

    def _call(self, item: object) -> None:
        callback = self._callback
        if callback is None or self._callback_failed_already:
            return  # after a failure later items are dropped
        try:
            callback(item)
        except Exception as exc:
            self._callback_failed(exc)

    def _callback_failed(self, exc: BaseException) -> None:
        self._callback_failed_already = True
        from ._startup import install_lines

        install_lines()
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(
            f"[{os.getpid()}] execnet: the callback of channel {self.id} raised; "
            f"closing the channel:\n{text}"
        )
        if self._remoteerror is None:
            self._remoteerror = RemoteError(text)
        self._error_seen = True  # reported just now: no "unhandled" warning later
        self._close(text)

    def _fire_endmarker(self) -> None:
        if self._endmarker_done or self._callback is None:
            return
        self._endmarker_done = True
        self.gateway._release_callback(self)
        if self._endmarker is not NO_ENDMARKER:
            try:
                self._callback(self._endmarker)
            except Exception as exc:
                if not self._callback_failed_already:
                    self._callback_failed(exc)

    if TYPE_CHECKING:  # typing.overload, which is not imported at run time

        @overload
        def makefile(
            self, mode: Literal["w"] = ..., proxyclose: bool = ...
        ) -> ChannelFileWrite: ...
        @overload
        def makefile(self, mode: Literal["r"], proxyclose: bool = ...) -> ChannelFileRead: ...

    def makefile(
        self, mode: str = "w", proxyclose: bool = False
    ) -> Union[ChannelFileWrite, ChannelFileRead]:
        """A file-like object over this channel.

        ``makefile('w')`` sends what is written (str or bytes) as items;
        ``makefile('r')`` reads them back with read(n) and readline(). With
        ``proxyclose=True`` closing the file closes the channel.
        """
        if mode == "w":
            return ChannelFileWrite(self, proxyclose)
        if mode == "r":
            return ChannelFileRead(self, proxyclose)
        raise ValueError(f"makefile mode must be 'w' or 'r', not {mode!r}")

    # -- closing ---------------------------------------------------------------------

    def isclosed(self) -> bool:
        """True once the channel is closed (by either side); it may still hold items."""
        return self._closed

    def close(self, error: Optional[object] = None) -> None:
        """Close the channel; with ``error`` the other side gets it as a RemoteError.

        Inside remote_exec code the channel closes itself when the code ends, so an
        explicit close there is refused (OSError).
        """
        if self._executing:
            raise OSError(f"cannot explicitly close {self!r} within remote_exec")
        self._close(None if error is None else str(error))

    def _close(self, error: Optional[str] = None) -> None:
        gateway = self.gateway
        with gateway._receivelock:
            if self._sent_close:
                return
            self._sent_close = True
            self._closed = True
        try:
            if error is None:
                gateway._send(_frames.CHANNEL_CLOSE, self.id)
            else:
                gateway._send(_frames.CHANNEL_CLOSE_ERROR, self.id, gateway._dumps(error))
        except OSError:
            pass  # the connection is gone; the other side knows
        with gateway._receivelock:
            self._queue_end()
            self._fire_endmarker()
        gateway._give_back()  # e.g. remote_exec code ends: the receiver reads again

    def waitclose(self, timeout: Optional[float] = None) -> None:
        """Wait until the other side closed; re-raise its error (RemoteError, EOFError).

        Channel.TimeoutError if that takes longer than ``timeout`` seconds.
        """
        self.gateway._give_back()  # the close comes through the receiver
        watch = self.gateway._watch_wait
        if watch is None or self._closed_event.is_set():
            closed = self._closed_event.wait(timeout)
        else:  # a main_thread_only task is about to wait for the other side
            closed = watch(self._closed_event.wait, timeout)
        if not closed:
            raise self.TimeoutError(f"{self!r} not closed after {timeout} seconds")
        error = self._remoteerror
        if error is not None:
            self._error_seen = True
            raise error

    def _getremoteerror(self) -> Optional[BaseException]:
        """The error the other side closed with: a RemoteError, None, or for a lost
        connection an EOFError — or, when the gateway knows the remote died without being
        asked to end, a NotProperlyTerminated carrying the post-mortem (pytest-xdist
        prints it in "node down"; it would replace an EOFError by a fixed text)."""
        self._error_seen = True
        error = self._remoteerror
        if isinstance(error, EOFError) and self.gateway._death is not None:
            return self.gateway._death
        return error

    def reconfigure(self, py2str_as_py3str: bool = True, py3str_as_py2str: bool = False) -> None:
        """Set string coercion for items received on this channel, on both sides."""
        self._strconfig = (py2str_as_py3str, py3str_as_py2str)
        payload = self.gateway._dumps(self._strconfig)
        self.gateway._send(_frames.RECONFIGURE, self.id, payload)

    # -- called by the receiver (holding the gateway's receive lock) -----------------

    def _deliver(self, item: object) -> None:
        if self._callback is None:
            self._items.put(item)
        else:
            self._call(item)

    def _on_remote_close(self, error: Optional[BaseException], *, sendonly: bool) -> None:
        """The other side sends nothing more; unless ``sendonly`` it receives nothing more."""
        if not sendonly:
            self._closed = True
        if self._receive_closed:
            return
        self._receive_closed = True
        if error is not None and self._remoteerror is None:
            self._remoteerror = error
        self._queue_end()
        self._closed_event.set()
        self._fire_endmarker()

    def _queue_end(self) -> None:
        """Put the end into the queue once: receive() raises after the items before it."""
        if not self._end_queued:
            self._end_queued = True
            self._items.put(_ENDMARKER)

    def _on_connection_lost(self, error: EOFError) -> None:
        if self._receive_closed:
            self._closed = True
            return
        self._on_remote_close(error, sendonly=False)


class _ChannelFile:
    """What both channel files share: the channel, proxyclose, close, a with block."""

    def __init__(self, channel: Channel, proxyclose: bool = False) -> None:
        self.channel = channel
        self._proxyclose = proxyclose

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.channel!r}>"

    def isatty(self) -> bool:
        """False: not a terminal (``print`` and loggers ask)."""
        return False

    def close(self) -> None:
        """Close the channel if the file was made with ``proxyclose=True``."""
        if self._proxyclose:
            self.channel.close()

    def __enter__(self: _File) -> _File:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class ChannelFileWrite(_ChannelFile):
    """``channel.makefile('w')``: each write() sends its argument as one item.

    ``print(..., file=f)`` works, and so does ``sys.stdout = f`` in remote code (see the
    example of ``Channel``).
    """

    @property
    def closed(self) -> bool:
        """True once the channel is closed (then writes fail)."""
        return self.channel.isclosed()

    def write(self, data: Union[str, bytes]) -> int:
        """Send ``data`` as one item; the number of characters or bytes written."""
        self.channel.send(data)
        return len(data)

    def writelines(self, lines: List[Union[str, bytes]]) -> None:
        """write() each of ``lines`` (no newlines are added)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Items are sent at once: nothing to flush."""


class ChannelFileRead(_ChannelFile):
    """``channel.makefile('r')``: read(n) and readline() over the items received.

    The items must be str (or bytes, all of one kind); iterating gives lines until the
    channel closes (see the example of ``Channel``).
    """

    def __init__(self, channel: Channel, proxyclose: bool = False) -> None:
        super().__init__(channel, proxyclose)
        self._buffer: Any = None  # str or bytes, the type of the first item
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            item = self.channel.receive()
        except EOFError:
            self._eof = True
            return False
        if not isinstance(item, (str, bytes)):
            raise TypeError(
                f"channel {self.channel.id} file got a {type(item).__name__}, not str or bytes"
            )
        self._buffer = item if self._buffer is None else self._buffer + item
        return True

    def read(self, numbytes: int = -1) -> Any:
        """Up to ``numbytes`` characters/bytes (all until the channel closes if -1)."""
        while numbytes < 0 or self._buffer is None or len(self._buffer) < numbytes:
            if not self._fill():
                break
        if self._buffer is None:
            return ""
        if numbytes < 0:
            data, self._buffer = self._buffer, self._buffer[:0]
        else:
            data, self._buffer = self._buffer[:numbytes], self._buffer[numbytes:]
        return data

    def readline(self) -> Any:
        """The next line, with its newline; shorter at the end of the stream."""
        while True:
            if self._buffer is not None:
                newline = "\n" if isinstance(self._buffer, str) else b"\n"
                index = self._buffer.find(newline)
                if index >= 0:
                    line, self._buffer = self._buffer[: index + 1], self._buffer[index + 1 :]
                    return line
            if not self._fill():
                return self.read()

    def __iter__(self) -> Iterator[Any]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line
