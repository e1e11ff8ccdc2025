"""Channels and gateways for asyncio code: ``await channel.receive()`` without a thread.

    from execnet_channel.aio import AsyncGateway

    agw = AsyncGateway(gateway)                    # any BaseGateway (thread model)
    channel = agw.remote_exec("channel.send(channel.receive() * 2)")
    await channel.send(21)
    assert await channel.receive(timeout=5) == 42

How it works: an AsyncChannel gives its Channel a queue whose ``put`` (run by the
gateway's one receiver thread, as for every channel) also wakes the coroutines waiting
on it with ``loop.call_soon_threadsafe``: no thread per waiter, and one wake-up per
waiting spell, not per item. The futures only say "look again"; items stay in the
queue until a coroutine takes one, with no ``await`` between taking and returning it, so
a cancelled (or timed out) ``receive()`` leaves every item for the next one.

``send()`` writes its frame without blocking (the IO's write end is made non-blocking:
its own sync write() then waits for room by poll), the rest of it as room comes
(``loop.add_writer``); a big frame (over 64 KiB), a write lock held by another thread
or an IO without a descriptor go to a short-lived thread, so the loop never blocks on
the stream.

This module travels like the rest of the package, but a remote imports it (and asyncio)
only when an ``async def`` function arrives through remote_exec: ``run_remote`` runs it
in an event loop with an AsyncChannel.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Generic, List, Optional, Tuple, TypeVar

from . import _frames
from ._channel import _ENDMARKER, Channel
from ._errors import ChannelCallbackError, ChannelClosedError
from ._gateway import BaseGateway, RemoteStatus
from ._receiving import _MORE, _SPIN_KEEP, _SPIN_MAX, ROLE_FREE
from ._startup import queue_module as _queue_module
from ._tls import TLSSocketIO

__all__ = ["AsyncChannel", "AsyncGateway", "run_in_thread", "run_remote"]

_G = TypeVar("_G", bound=BaseGateway)
_T = TypeVar("_T")

_Empty = _queue_module().Empty
_INLINE_MAX = 64 * 1024  # bigger frames are written by a short-lived thread
_SPIN_BUDGET = 0.0002  # seconds a spin may take before the next one is shorter


class _Waiters:
    """Futures of coroutines waiting for something of one channel (an item, its close);
    woken all at once, from any thread, by one call_soon_threadsafe at a time."""

    def __init__(self) -> None:
        self.futures: List[asyncio.Future[None]] = []
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._wake_pending = False

    def wake_soon(self) -> None:
        """Called by the thread that put an item or closed the channel (after doing it)."""
        if self.futures and not self._wake_pending:
            loop = self.loop
            if loop is None:
                return
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop is closed: nobody waits any more
                self._wake_pending = False

    def _wake(self) -> None:
        # Reset before taking the futures: a put seen as "pending" after this point has
        # its item found by the futures' owners (they look in the queue after waking),
        # and a waiter that registers later looks in the queue after registering.
        self._wake_pending = False
        futures, self.futures = self.futures, []
        for future in futures:
            if not future.done():
                future.set_result(None)

    async def wait(self, ready: Callable[[], bool], deadline: Optional[float]) -> bool:
        """Wait until ``ready()`` (checked after registering, so no wake is missed) or
        a wake-up; False once ``deadline`` (loop time) has passed."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        future: asyncio.Future[None] = loop.create_future()
        self.futures.append(future)
        timer = None
        try:
            if ready():
                return True
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                timer = loop.call_later(remaining, _resolve, future)
            await future
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):  # else taken by _wake
                self.futures.remove(future)
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _async_items_class() -> type:
    base: type = _queue_module().SimpleQueue

    class AsyncItems(base):  # type: ignore[misc]
        """A channel's queue that wakes the coroutines waiting on it."""

        def __init__(self, waiters: _Waiters) -> None:
            super().__init__()  # (PyPy's SimpleQueue is written in Python)
            self.waiters = waiters

        def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
            if item is not ROLE_FREE:  # the lent role is offered: wake, queue nothing
                super().put(item)
            self.waiters.wake_soon()

    return AsyncItems


_AsyncItems: Any = _async_items_class()


class _ClosedEvent:
    """A channel's closed event that also wakes waitclose() coroutines."""

    def __init__(self, event: Any, waiters: _Waiters) -> None:
        self._event = event
        self._waiters = waiters

    def set(self) -> None:
        self._event.set()
        self._waiters.wake_soon()

    def is_set(self) -> bool:
        return bool(self._event.is_set())

    def wait(self, timeout: Optional[float] = None) -> bool:
        return bool(self._event.wait(timeout))


def _check_model(gateway: BaseGateway) -> None:
    if gateway.execmodel.cooperative:
        raise ValueError(
            f"asyncio channels need the thread or main_thread_only execution model; "
            f"gateway {gateway.id!r} uses {gateway.execmodel.backend!r}"
        )


class AsyncChannel:
    """A Channel for asyncio code: ``await send(item)``, ``await receive(timeout)``,
    ``await waitclose(timeout)``, ``async for item in channel``.

    Wraps ``channel`` (which stays usable: ``channel.channel``; send that one inside an
    item to pass the channel on). Errors are the Channel's: RemoteError, TimeoutError
    (``Channel.TimeoutError``), EOFError, ChannelClosedError.

    >>> channel = AsyncChannel(gateway.remote_exec("channel.send(1)"))   # doctest: +SKIP
    >>> await channel.receive()                                        # doctest: +SKIP
    1
    """

    RemoteError = Channel.RemoteError
    TimeoutError = Channel.TimeoutError

    def __init__(self, channel: Channel) -> None:
        gateway = channel.gateway
        _check_model(gateway)
        self.channel = channel
        self.gateway = gateway
        self.id = channel.id
        items: Any = channel._items
        if isinstance(items, _AsyncItems):  # wrapped before: share the same queue
            self._waiters: _Waiters = items.waiters
            self._items: Any = items
            return
        waiters = self._waiters = _Waiters()
        new = _AsyncItems(waiters)
        # The receiver puts items (and closes) holding the receive lock: swap there, so
        # nothing goes to the old queue or event after this point.
        with gateway._receivelock:
            while True:
                try:
                    item = items.get(False)
                except channel._empty:
                    break
                if item is not ROLE_FREE:
                    new.put(item)
            channel._items = new
            channel._closed_event = _ClosedEvent(channel._closed_event, waiters)
        self._items = new

    def __repr__(self) -> str:
        return "<Async" + repr(self.channel)[1:]

    # -- sending ---------------------------------------------------------------------

    async def send(self, item: object) -> None:
        """Send ``item``; waits for room in the stream without blocking the loop.

        DumpError if it does not serialize, ChannelClosedError if the channel is closed,
        OSError if the connection is gone. Cancelled while waiting for room: nothing was
        sent; a big frame being written by its thread is written whole all the same.
        """
        channel = self.channel
        if channel._closed:
            raise ChannelClosedError(f"cannot send to {channel!r}: it is closed")
        parts, size = self.gateway._item_frame(channel.id, item)
        await _write_frame(self.gateway, parts, size)

    # -- receiving -------------------------------------------------------------------

    async def receive(self, timeout: Optional[float] = None) -> Any:
        """The next item; at most ``timeout`` seconds (None: no limit).

        Channel.TimeoutError after the timeout, RemoteError if the other side failed,
        EOFError once the channel is closed and every item was received,
        ChannelCallbackError if it has a callback. Cancelled (or timed out), it takes
        nothing: the item that arrives is the next receive()'s.
        """
        channel = self.channel
        if channel._callback is not None:
            raise ChannelCallbackError(f"cannot receive(): {channel!r} has a callback")
        items = self._items
        try:
            item = items.get(False)
        except _Empty:
            item = ROLE_FREE
        if item is ROLE_FREE:
            item = await self._wait_item(timeout)
        if item is _ENDMARKER:
            channel._ended()
        return item

    async def _wait_item(self, timeout: Optional[float]) -> Any:
        items = self._items
        gateway = self.gateway
        found: List[Any] = []

        def take() -> bool:
            try:
                found.append(items.get(False))
            except _Empty:
                return False
            return True

        reader = _reader(gateway)
        role = gateway._role

        def ready() -> bool:  # an item, or the lent role is free to take
            return take() or (reader is not None and gateway._lent and not role.locked())  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not found:
            if reader is not None and gateway._lent and role.acquire(False):
                if not await reader.read_lent(items, deadline):
                    raise self.channel._timed_out(timeout)
                take()
                continue
            if reader is not None:
                gateway._wanting.append(items)  # the receiver lends the role to us too
            try:
                woken = await self._waiters.wait(ready, deadline)
            finally:
                if reader is not None:
                    gateway._wanting.remove(items)
            if not woken:
                raise self.channel._timed_out(timeout)
            if not found:
                take()
        return found[0]

    def __aiter__(self) -> AsyncChannel:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except EOFError:
            raise StopAsyncIteration from None

    # -- closing ---------------------------------------------------------------------

    def isclosed(self) -> bool:
        """True once the channel is closed (by either side); it may still hold items."""
        return self.channel.isclosed()

    def close(self, error: Optional[object] = None) -> None:
        """Close the channel (see Channel.close); it sends one small frame."""
        self.channel.close(error)

    async def waitclose(self, timeout: Optional[float] = None) -> None:
        """Wait until the other side closed; re-raise its error (RemoteError, EOFError).

        Channel.TimeoutError after ``timeout`` seconds.
        """
        channel = self.channel
        channel.gateway._give_back()  # the close comes through the receiver
        closed = channel._closed_event
        deadline = None
        if timeout is not None:
            deadline = asyncio.get_running_loop().time() + timeout
        while not closed.is_set():
            if not await self._waiters.wait(closed.is_set, deadline):
                raise self.TimeoutError(f"{channel!r} not closed after {timeout} seconds")
        error = channel._remoteerror
        if error is not None:
            channel._error_seen = True
            raise error

    def setcallback(self, callback: Callable[[Any], object], endmarker: Any = None) -> None:
        """Channel.setcallback (the callback runs in the receiver thread)."""
        from ._channel import NO_ENDMARKER

        self.channel.setcallback(callback, NO_ENDMARKER if endmarker is None else endmarker)

    def reconfigure(self, py2str_as_py3str: bool = True, py3str_as_py2str: bool = False) -> None:
        """Channel.reconfigure."""
        self.channel.reconfigure(py2str_as_py3str, py3str_as_py2str)


class AsyncGateway(Generic[_G]):
    """A gateway for asyncio code; ``gateway`` is the (sync) gateway it wraps.

    Sync and async use may mix: a thread on one channel, a coroutine on another.

    >>> agw = AsyncGateway(gateway)                                  # doctest: +SKIP
    >>> status = await agw.remote_status()                           # doctest: +SKIP
    """

    def __init__(self, gateway: _G) -> None:
        _check_model(gateway)
        self.gateway = gateway
        self.id = gateway.id

    def __repr__(self) -> str:
        return "<Async" + repr(self.gateway)[1:]

    def remote_exec(self, source: object, **kwargs: Any) -> AsyncChannel:
        """Run ``source`` on the other side (as ``Gateway.remote_exec``; an ``async def``
        function runs there in an event loop, with an AsyncChannel)."""
        return AsyncChannel(self.gateway.remote_exec(source, **kwargs))

    def newchannel(self) -> AsyncChannel:
        """A new channel (send its ``.channel`` through another channel to use it)."""
        return AsyncChannel(self.gateway.newchannel())

    async def remote_status(self) -> RemoteStatus:
        """numchannels, numexecuting and execmodel of the other side."""
        return RemoteStatus(**await self._request(_frames.STATUS))

    async def remote_info(self) -> Dict[str, Any]:
        """The other interpreter's executable, version_info, platform, cwd and pid."""
        return dict(await self._request(_frames.INFO))

    async def _request(self, kind: int) -> Dict[str, Any]:
        channel = self.newchannel()
        header = _frames.HEADER.pack(kind, channel.id, 0)
        await _write_frame(self.gateway, [header], 0)
        answer = await channel.receive()
        assert isinstance(answer, dict)
        return answer

    def exit(self) -> None:
        """Ask the other side to end (Gateway.exit; it does not wait)."""
        self.gateway.exit()

    async def join(self, timeout: Optional[float] = None) -> None:
        """Wait (at most ``timeout`` seconds) for the receiver to end; no TimeoutError."""
        gateway = self.gateway
        gateway._give_back()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def ended() -> None:
            with contextlib.suppress(RuntimeError):  # (the loop is closed)
                loop.call_soon_threadsafe(_resolve, done)

        gateway._when_receiver_done(ended)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                gateway._done_callbacks.remove(ended)

    def hasreceiver(self) -> bool:
        """True while the receiver is running."""
        return self.gateway.hasreceiver()


# -- reading the stream in the loop (the lent reading role) ---------------------------


class _Reader:
    """The lent reading role (``_receiving``) for coroutines: while the receiver lends
    it, a coroutine waiting in receive() reads the stream in the loop itself (when the
    descriptor is readable: ``loop.add_reader``), so a reply reaches it without a wake-up
    of the receiver thread and a hand-over to the loop: the round trip of the sync API."""

    def __init__(self, gateway: BaseGateway, fd: int) -> None:
        self.gateway = gateway
        self.fd = fd

    async def read_lent(self, items: Any, deadline: Optional[float]) -> bool:
        """Holding the role: read until ``items`` has something or the next frame is
        the receiver's; False once ``deadline`` passed."""
        gateway = self.gateway
        leave = False
        try:
            gateway._lend_uses += 1
            while not items.qsize():
                if gateway._lost is not None:
                    leave = True
                    break
                if not _whole_frame_buffered(gateway) and not self._spin():
                    if not await self._readable(deadline):
                        return False
                    continue
                try:
                    outcome = gateway._pump(True, False)  # (poll said it would not block)
                except (EOFError, OSError, MemoryError, _frames.FrameError):
                    leave = True  # the receiver meets it again and ends the connection
                    break
                if outcome != _MORE:
                    leave = True
                    break
        finally:
            gateway._role.release()
            if gateway._wanting:
                gateway._tell_waiters()
            if leave:
                gateway._give_back()
        return True

    def _spin(self) -> bool:
        """Whether the stream is readable, after polling briefly as the sync lent
        reader does (a reply usually comes within microseconds; the selector's wake-up
        costs tens of them); the spin shrinks while replies come slowly."""
        gateway = self.gateway
        poll = gateway._io.poll_readable  # type: ignore[attr-defined]
        if poll(0):
            return True
        spin = gateway._spin
        if spin:
            began = time.monotonic()
            for _ in range(spin):
                os.sched_yield()
                if poll(0):
                    return True
            if time.monotonic() - began > _SPIN_BUDGET:
                gateway._spin = spin // 2
        return False

    async def _readable(self, deadline: Optional[float]) -> bool:
        loop = asyncio.get_running_loop()
        began = loop.time()
        future: asyncio.Future[None] = loop.create_future()
        timer = None
        if deadline is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            timer = loop.call_later(remaining, _resolve, future)
        loop.add_reader(self.fd, _resolve, future)
        try:
            await future
        finally:
            loop.remove_reader(self.fd)
            if timer is not None:
                timer.cancel()
        if loop.time() - began < _SPIN_KEEP:
            self.gateway._spin = _SPIN_MAX  # replies come quickly: spin again
        return True


def _whole_frame_buffered(gateway: BaseGateway) -> bool:
    """Whether a whole frame waits in the receive buffer (left by a reader that
    stopped before it): _pump handles it without reading. Otherwise _pump reads, which
    the loop may do only once the stream is readable."""
    start, end = gateway._start, gateway._end
    if end - start < _frames.HEADER_SIZE:
        return False
    try:
        need = _frames.pending_frame_size(gateway._view, start, end, gateway.max_frame, gateway._at)
    except _frames.FrameError:
        return True  # _pump meets it and leaves it to the receiver
    return bool(need <= end - start)


def _reader(gateway: BaseGateway) -> Optional[_Reader]:
    """The gateway's _Reader, or None where coroutines cannot read the stream without
    blocking (no lending, an IO without a descriptor to poll, TLS: a record may be half
    there)."""
    reader = gateway._aio_reader
    if reader is None:
        io: Any = gateway._io
        fd = None
        if gateway._lendable and not isinstance(io, TLSSocketIO):
            try:
                fd = int(io._read_fileno())
            except (AttributeError, NotImplementedError, OSError, ValueError):
                fd = None
        reader = gateway._aio_reader = _Reader(gateway, fd) if fd is not None else False
    return reader or None


# -- writing without blocking the loop -----------------------------------------------


class _Room:
    """Per gateway: writing without waiting (``write_some``: the bytes the stream took,
    0 if none) and coroutines waiting for room (one add_writer for all of them)."""

    def __init__(self, io: Any) -> None:
        self.fd: Optional[int] = None
        self.write_some: Optional[Callable[[memoryview], int]] = None
        self.waiters: List[asyncio.Future[None]] = []
        fd = getattr(io, "write_fd", None)
        sock = getattr(io, "sock", None)
        if isinstance(fd, int):
            # FdIO: its write end is non-blocking from now on (its own write() then
            # waits for room by poll on BlockingIOError)
            os.set_blocking(fd, False)
            self.fd = fd
            self.write_some = functools.partial(_write_fd, fd)
        elif sock is not None and not isinstance(io, TLSSocketIO):  # SocketIO
            self.fd = int(sock.fileno())
            self.write_some = functools.partial(_send_socket, sock)
        elif sock is not None:  # TLS: records are written whole once there is room
            self.fd = int(sock.fileno())
        self.has_room: Callable[[], bool] = lambda: True
        if self.fd is not None:
            import select

            poller = select.poll()
            poller.register(self.fd, select.POLLOUT)
            check = poller.poll
            self.has_room = lambda: bool(check(0))

    async def wait(self) -> None:
        """Until the stream takes bytes again (or fails: the next write says how)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        fd = self.fd
        assert fd is not None
        if not self.waiters:
            loop.add_writer(fd, self._wake, loop)
        self.waiters.append(future)
        try:
            await future
        finally:
            if future in self.waiters:
                self.waiters.remove(future)
                if not self.waiters:
                    loop.remove_writer(fd)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.fd is not None
        loop.remove_writer(self.fd)
        waiters, self.waiters = self.waiters, []
        for future in waiters:
            _resolve(future)


def _write_fd(fd: int, data: memoryview) -> int:
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _send_socket(sock: Any, data: memoryview) -> int:
    import socket

    try:
        return int(sock.send(data, socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return 0


def _room(gateway: BaseGateway) -> _Room:
    room = gateway._aio_room
    if room is None:
        # (a sync write under way while the fd turns non-blocking is not affected; its
        # later ones wait for room by poll)
        room = gateway._aio_room = _Room(gateway._io)
    assert isinstance(room, _Room)
    return room


async def _write_frame(gateway: BaseGateway, parts: List[bytes], size: int) -> None:
    """Write a frame without blocking the loop: at once when there is room, else the
    part that fits and the rest as room comes (the frame holds the write lock meanwhile,
    as a blocked sync writer would). A big frame, a write lock held by a thread, or an
    IO without a descriptor (via) go to a short-lived thread.

    Cancelled with part of the frame written, a thread writes the rest (the stream
    stays whole) and the cancellation comes through; with nothing written, nothing is.
    """
    lock = gateway._writelock
    room = _room(gateway)
    if size > _INLINE_MAX or room.fd is None or not lock.acquire(False):
        await run_in_thread(gateway._write_frame, parts, size)
        return
    locked = True
    try:
        gateway._check_sending()
        joined = b"".join(parts)
        data = memoryview(joined)
        write_some = room.write_some
        if write_some is None:
            while not room.has_room():
                await room.wait()
            gateway._io.write(joined)
        else:
            written = write_some(data)
            while written < len(data):
                try:
                    await room.wait()
                except asyncio.CancelledError:
                    if written:
                        locked = False  # the thread releases it
                        threading.Thread(target=_finish, args=(gateway, data[written:])).start()
                    raise
                gateway._check_sending()
                written += write_some(data[written:])
    finally:
        if locked:
            lock.release()
    if gateway._pending_last:
        gateway._flush_pending()


def _finish(gateway: BaseGateway, rest: memoryview) -> None:
    try:
        gateway._io.write(bytes(rest))
    except OSError:
        pass  # the connection is gone: the receiver tells every waiter
    finally:
        gateway._writelock.release()


async def run_in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """``func(*args)`` in a new short-lived thread, awaited (the loop runs meanwhile).

    A cancelled await does not stop ``func``; its outcome is dropped. Unlike the loop's
    default executor, no thread stays behind once ``func`` returned.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        outcome: Tuple[bool, Any]
        try:
            result = func(*args)
        except BaseException as exc:
            outcome = (False, exc)
        else:
            outcome = (True, result)
        with contextlib.suppress(RuntimeError):  # (the loop is closed: nobody waits)
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=run, name=f"execnet-aio {getattr(func, '__name__', func)}").start()
    return await future


def run_remote(function: Callable[..., Awaitable[object]], channel: Channel, kwargs: Any) -> None:
    """Run ``await function(AsyncChannel(channel), **kwargs)`` in a new event loop in this
    thread: what a remote does with an ``async def`` function sent by remote_exec."""

    async def main() -> None:
        await function(AsyncChannel(channel), **kwargs)

    asyncio.run(main())
