"""Reading the stream: the receiver task, and the reading role it lends to receive().

Every gateway has one receiver task that reads frames and dispatches them: items go
into their channel's queue (or to its callback), control frames are handled at once.

Handing each item from the receiver thread to the thread waiting in receive() costs a
thread wake-up, and a round trip pays four of them (two per side). So over a pipe or a
socket with OS threads, the reading is a *role* (``_role``, a lock): after a pass in
which some receive() waited, the receiver lends the role out and sleeps, and a thread in
receive() that finds its queue empty reads the stream itself (leader/follower). It
spins briefly on poll() before blocking, because a reply usually comes within
microseconds while a blocked wake-up on a virtual machine costs tens of them.

What a reading thread may dispatch itself is only CHANNEL_DATA for a channel without a
callback (into that channel's queue; a frame bigger than the buffer too, read into the
second buffer). At any other frame (a callback's item, a close, an exec request, a
terminate, a status request...), the end of the stream or an error it stops, leaves
the frame in the buffer and gives the role back: callbacks
and control frames are always handled by the receiver task, as without lending. The
receiver also takes the role back when nobody used it for a whole ``_LEND_CHECK``
period, and when a thread blocks in something other than receive() (``waitclose``,
``join``, ``setcallback``, closing a channel): so frames that need the receiver wait at
most about twice that period while a receiving thread is busy elsewhere.

Every receive path goes through ``_pump``: the receiver's loop, a thread holding the
lent role, and IOs without ``readinto`` (``read(n)`` only, the IO protocol's minimum),
which are read exactly up to the end of the frame at hand. So a header is judged in one place
(``_frames.pending_frame_size``/``check_header``): an unknown kind or a frame over
``max_frame`` ends the connection with the same error whoever reads it, at the header.
Memory grows only with what arrived: a frame too big for the buffer is read into an
anonymous mapping whose pages the OS provides as they are written, so a header that
declares gigabytes and sends little costs what it sent.
"""

from __future__ import annotations

import sys

from execnet_serial import loads_payload_at as _decode  # frames decode in place

from . import _frames
from ._startup import TYPE_CHECKING
from ._trace import trace, trace_enabled

if TYPE_CHECKING:
    import weakref
    from typing import Any, Callable, Dict, List, Optional

    from ._channel import Channel
    from ._execmodels import ExecModel
    from ._protocols import IO, LockLike, QueueLike

__all__ = ["ROLE_FREE", "Receiving"]

_CHUNK = 256 * 1024  # receive buffer: frames up to this size are decoded in place
_KEEP_BIG = 64 * 1024 * 1024  # the buffer for big frames is kept up to this size
# An IO without readinto is read in pieces of at most this size: its read(n) may set
# aside n bytes before any arrive.
_PLAIN_PIECE = 512 * 1024
_LEND_CHECK = 0.01  # seconds: how often the receiver looks whether the lent role is used
_SPIN_MAX = 64  # poll(0) calls before a reading thread blocks (about 40-80 µs)
_SPIN_KEEP = 0.0005  # a blocking wait shorter than this (s) keeps the spin at its maximum

# what one pass over the stream ended with
_MORE = 0  # go on reading
_STOP = 1  # GATEWAY_TERMINATE: the receiver ends
_LEAVE = 2  # a lent reader stopped: the next frame (or the stream's end) is the receiver's
_TIMEOUT = 3  # a lent reader's timeout ran out


class _RoleFree:
    def __repr__(self) -> str:
        return "ROLE_FREE"


#: put into the queue of a thread waiting in receive(): the reading role is free, take it
ROLE_FREE: Any = _RoleFree()


class Receiving:
    """The receiving half of BaseGateway (a mixin: it uses the gateway's attributes)."""

    if TYPE_CHECKING:
        id: str
        execmodel: ExecModel
        _io: IO
        _refs: Dict[int, weakref.ReferenceType[Channel]]
        _receivelock: LockLike
        _strconfig: Any
        _hook: Any
        _lost: Optional[str]
        max_frame: int

        def _lookup(self, channel_id: int, create: bool = True) -> Optional[Channel]: ...
        def _dispatch(self, kind: int, channel_id: int, payload: memoryview, at: int) -> bool: ...
        def _bad_item(self, channel: Channel, exc: Exception) -> None: ...

    def _init_receiving(self, buffered: bool, opener: bool) -> None:
        model = self.execmodel
        # An anonymous mmap's pages are zero until first written, and only what arrives
        # writes them; a bytearray is zeroed whole at once: ~70 page faults, 0.1 ms for
        # each gateway an opener makes, and as much of a fresh child's start. The opener
        # imports mmap; a remote uses it where it is imported already (a fork server
        # preloads it), as the import would cost a plain child's start more than it saves.
        mmap = sys.modules.get("mmap")
        if mmap is None and opener:
            import mmap
        self._buf: Any = mmap.mmap(-1, _CHUNK) if mmap is not None else bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._start = 0  # buffered frames are in _buf[_start:_end]
        self._end = 0
        self._at = 0  # where the frame at _buf[_start] begins in the stream
        self._plain = not buffered  # read(n) only: read exactly what the frame needs
        self._bigbuf: Any = b""  # the buffer for frames bigger than _buf (see _big_buffer)
        self._lendable = buffered and not model.cooperative and hasattr(self._io, "poll_readable")
        self._role = model.Lock()  # held by whoever reads the stream
        self._lent = False  # the receiver left reading to threads in receive()
        self._lend_uses = 0  # times a receive() took the lent role
        self._wanting: List[QueueLike] = []  # queues of receive()s waiting on another reader
        self._wake = model.Lock()  # released to wake the receiver out of its lent sleep
        self._wake.acquire()
        self._spin = _SPIN_MAX

    # -- the receiver task -----------------------------------------------------------

    def _receive_frames(self) -> None:
        """The receiver's loop for buffered IOs; returns at GATEWAY_TERMINATE."""
        if not self._lendable:
            while self._pump(False) != _STOP:
                pass
            return
        role = self._role
        lending = False
        while True:
            if lending:
                uses = self._lend_uses
                self._wake.acquire(True, _LEND_CHECK)
                if self._lent and self._lend_uses != uses:
                    continue  # the role is in use: look again later
                role.acquire()  # given back, or unused for a whole period: read again
                self._lent = lending = False
            else:
                role.acquire()
            try:
                outcome = self._pump(False)
                if outcome == _MORE and self._wanting:
                    self._lent = lending = True
            finally:
                role.release()
            if outcome == _STOP:
                return
            if lending:
                self._tell_waiters()

    def _give_back(self) -> None:
        """Make the receiver read again (it is lending the role, or about to)."""
        if self._lent:
            self._lent = False
            try:
                self._wake.release()
            except RuntimeError:
                pass  # woken already

    def _tell_waiters(self) -> None:
        for items in list(self._wanting):
            items.put(ROLE_FREE)

    # -- one pass over the stream ----------------------------------------------------

    def _pump(self, lent: bool, big: bool = True) -> int:
        """Read once unless a whole frame is buffered, then dispatch the whole frames.

        The receiver dispatches everything; a ``lent`` reader stops (``_LEAVE``) before
        any frame that is not an item for a queue, and with ``big=False`` (a coroutine,
        which must not wait for a big frame's bytes) before a frame bigger than the
        receive buffer.
        """
        start = self._start
        end = self._end
        if end - start < _frames.HEADER_SIZE or (
            _frames.pending_frame_size(self._view, start, end, self.max_frame, self._at)
            > end - start
        ):
            outcome = self._read_more(lent, big)
            if outcome is not None:
                return outcome
            start = self._start
            end = self._end
        # At least one whole frame: copy what was read to bytes once, and decode every
        # frame where it sits (no copy and no memoryview per message).
        chunk = bytes(self._view[start:end])
        size = end - start
        pos = 0
        outcome = _MORE
        unpack = _frames.HEADER.unpack_from
        header_size = _frames.HEADER_SIZE
        data_kind = _frames.CHANNEL_DATA
        refs = self._refs
        hook = self._hook
        decode = _decode
        tracing = trace_enabled()
        describe = _frames.describe_frame
        with self._receivelock:
            while size - pos >= header_size:
                kind, channel_id, length = unpack(chunk, pos)
                stop = pos + header_size + length
                if stop > size:
                    break
                if kind != data_kind:
                    if lent:
                        outcome = _LEAVE
                        break
                    stopped = self._dispatch_in(chunk, pos, stop, kind, channel_id)
                    pos = stop
                    if stopped:
                        outcome = _STOP
                        break
                    continue
                # CHANNEL_DATA, the hot path: _dispatch inlined
                if tracing:
                    trace(f"gateway {self.id}: received {describe(data_kind, channel_id, length)}")
                ref = refs.get(channel_id)
                channel = ref() if ref is not None else None
                if channel is None:
                    channel = self._lookup(channel_id)
                    if channel is None:
                        pos = stop
                        continue
                if lent and channel._callback is not None:
                    outcome = _LEAVE
                    break
                config = channel._strconfig or self._strconfig
                try:
                    # loads_payload(chunk, start=, end=) without its keyword parsing and
                    # bounds check (stop <= size was checked above)
                    item = decode(chunk, pos + header_size, stop, config[0], config[1], hook)
                except Exception as exc:
                    pos = stop
                    self._bad_item(channel, exc)
                    continue
                pos = stop
                if channel._callback is None:
                    channel._items.put(item)
                else:
                    channel._call(item)
        self._at += pos
        start += pos
        if start == end:
            start = end = 0
        self._start = start
        self._end = end
        return outcome

    def _dispatch_in(self, chunk: bytes, pos: int, stop: int, kind: int, channel_id: int) -> bool:
        """Judge and dispatch the control frame at ``chunk[pos:stop]``; True: stop."""
        at = self._at + pos
        header_size = _frames.HEADER_SIZE
        # (a whole frame here fits _buf, so it is within max_frame)
        _frames.check_header(kind, channel_id, stop - pos - header_size, self.max_frame, at)
        return self._dispatch(kind, channel_id, memoryview(chunk)[pos + header_size : stop], at)

    def _read_more(self, lent: bool, big: bool = True) -> Optional[int]:
        """Read once toward the frame at ``_start`` (its header judged first, when it is
        there); None when a whole frame is buffered now, else the pass's outcome."""
        view = self._view
        start = self._start
        end = self._end
        if end - start < _frames.HEADER_SIZE:  # the usual case between messages: nothing
            need = _frames.HEADER_SIZE
        else:
            need = _frames.pending_frame_size(view, start, end, self.max_frame, self._at)
        if need > _CHUNK:
            if lent and (not big or not self._queued_item(start)):
                return _LEAVE
            return self._receive_big()
        if _CHUNK - start < need:
            self._buf[: end - start] = self._buf[start:end]
            end -= start
            start = self._start = 0
            self._end = end
        if self._plain:
            end += self._read_plain(view[end : start + need])
        else:
            end += self._io.readinto(view[end:])  # type: ignore[attr-defined]
        self._end = end
        if _frames.pending_frame_size(view, start, end, self.max_frame, self._at) > end - start:
            return _MORE
        return None

    def _read_plain(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from an IO without readinto (never past the frame at hand)."""
        size = len(buffer)
        buffer[:] = self._io.read(size)
        return size

    def _queued_item(self, start: int) -> bool:
        """Whether the frame at ``start`` is an item for a channel's queue (no callback)."""
        kind, channel_id, _ = _frames.HEADER.unpack_from(self._view, start)
        if kind != _frames.CHANNEL_DATA:
            return False
        ref = self._refs.get(channel_id)
        channel = ref() if ref is not None else None
        return channel is not None and channel._callback is None

    def _receive_big(self) -> int:
        """Read a frame bigger than the buffer into a second buffer (kept for the next
        one: a fresh allocation per frame costs more than the copy) and dispatch it."""
        start = self._start
        kind, channel_id, length = _frames.HEADER.unpack_from(self._view, start)
        bigview = self._big_buffer(length)
        have = self._end - start - _frames.HEADER_SIZE
        bigview[:have] = self._view[start + _frames.HEADER_SIZE : self._end]
        self._start = self._end = 0
        if self._plain:
            read = self._io.read
            while have < length:
                piece = min(length - have, _PLAIN_PIECE)
                bigview[have : have + piece] = read(piece)
                have += piece
        else:
            readinto: Callable[[memoryview], int] = self._io.readinto  # type: ignore[attr-defined]
            while have < length:
                have += readinto(bigview[have:])
        at = self._at
        self._at += _frames.HEADER_SIZE + length
        with self._receivelock:
            stop = self._dispatch(kind, channel_id, bigview, at)
        bigview.release()
        if len(self._bigbuf) > _KEEP_BIG:
            self._drop_big_buffer()
        return _STOP if stop else _MORE

    def _big_buffer(self, length: int) -> memoryview:
        """A writable view of ``length`` bytes for a big frame: the kept buffer if it is
        large enough, else a new anonymous mapping (mmap), whose memory the OS provides
        page by page as the frame's bytes are written into it. So memory follows what
        arrived, not what the header declared; a bytearray would be zero-filled (all of
        it touched) before the first byte is read."""
        if len(self._bigbuf) < length:
            self._drop_big_buffer()
            import mmap

            try:
                flags = getattr(mmap, "MAP_PRIVATE", None)  # not on Windows
                if flags is None:
                    self._bigbuf = mmap.mmap(-1, length)
                else:
                    self._bigbuf = mmap.mmap(-1, length, flags=flags)
            except (OSError, OverflowError, ValueError) as exc:
                raise MemoryError(f"no memory for a frame of {length} bytes: {exc}") from exc
        return memoryview(self._bigbuf)[:length]

    def _drop_big_buffer(self) -> None:
        old, self._bigbuf = self._bigbuf, b""
        close = getattr(old, "close", None)
        if close is not None:
            try:
                close()  # unmapped now, not at the next garbage collection (PyPy)
            except BufferError:
                pass  # a view is still alive somewhere: unmapped when it goes

    # -- receive() through the lent role ---------------------------------------------

    def _receive_item(self, channel: Channel, timeout: Optional[float]) -> Any:
        """The next thing in ``channel``'s queue, reading the stream here when the role
        is lent. TimeoutError (the channel's) after ``timeout`` seconds."""
        items = channel._items
        empty = channel._empty
        role = self._role
        deadline = None
        if timeout is not None:
            import time

            deadline = time.monotonic() + timeout
        while True:
            if items.qsize():
                try:
                    item = items.get(False)
                except empty:
                    continue  # another thread receiving on this channel took it
                if item is not ROLE_FREE:
                    return item
                continue
            if self._lent and role.acquire(False):
                try:
                    self._lend_uses += 1
                    outcome = self._read_lent(items, deadline) if self._lent else _MORE
                finally:
                    role.release()
                    if self._wanting:
                        self._tell_waiters()
                if outcome == _LEAVE:
                    self._give_back()
                elif outcome == _TIMEOUT:
                    raise channel._timed_out(timeout)
                continue
            self._wanting.append(items)
            try:
                if self._lent and role.acquire(False):
                    role.release()  # free after all: take it at the top of the loop
                    continue
                if deadline is None:
                    item = items.get()
                else:
                    import time

                    item = items.get(True, max(0.0, deadline - time.monotonic()))
            except empty:
                raise channel._timed_out(timeout) from None
            finally:
                self._wanting.remove(items)
            if item is not ROLE_FREE:
                return item

    def _read_lent(self, items: QueueLike, deadline: Optional[float]) -> int:
        """Holding the lent role: read until ``items`` has something, the deadline
        passes, or the next frame is the receiver's."""
        while not items.qsize():
            if self._lost is not None:
                return _LEAVE
            if not self._wait_readable(deadline):
                return _TIMEOUT
            try:
                outcome = self._pump(True)
            except (EOFError, OSError, MemoryError, _frames.FrameError):
                # the receiver meets it again and ends the connection
                return _LEAVE
            if outcome != _MORE:
                return _LEAVE
        return _MORE

    def _wait_readable(self, deadline: Optional[float]) -> bool:
        if self._start != self._end:
            return True  # part of a frame is here: read the rest
        poll: Callable[[Optional[float]], bool] = self._io.poll_readable  # type: ignore[attr-defined]
        spin = self._spin
        if spin:
            import os

            yield_ = os.sched_yield
            for _ in range(spin):
                if poll(0):
                    return True
                yield_()
        import time

        began = time.monotonic()
        ready = poll(None if deadline is None else max(0.0, deadline - began))
        # Spin again only while replies come quickly (a round trip); a thread that
        # waits long (a worker between tasks) would only burn CPU with it.
        self._spin = _SPIN_MAX if time.monotonic() - began < _SPIN_KEEP else spin // 2
        return ready
