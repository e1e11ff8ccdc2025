"""BaseGateway: the endpoint both sides of a connection run.

One receiver task reads frames and dispatches them: items go straight into their
channel's queue (or to its callback), status and info requests are answered at once.
Senders write whole frames under one lock, so frames from many threads never mix.
"""

from __future__ import annotations

import itertools
import os
import sys
import weakref

from execnet_serial import DumpError, LoadError, dumps_payload, loads_payload
from execnet_serial import dumps_payload_parts as encode_parts  # frames written from parts

from . import _frames
from ._channel import Channel
from ._errors import NotProperlyTerminated, RemoteError
from ._execmodels import ExecModel
from ._io import _is_buffered
from ._receiving import Receiving
from ._source import ExecSpec, make_spec
from ._startup import TYPE_CHECKING
from ._trace import trace, trace_enabled

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

    from ._protocols import IO

__all__ = ["BaseGateway", "RemoteStatus"]

_SMALL = 64 * 1024  # payloads below this are joined to their header; larger use writev
_MAX_WRITEV = 16  # more parts than this are joined (IOV_MAX; sendall per part on sockets)
_DATA = _frames.CHANNEL_DATA
# (py2str_as_py3str, py3str_as_py2str) for control payloads and new gateways
_DEFAULT_STRCONFIG = (True, False)
_pack_header = _frames.HEADER.pack
_TRACING = trace_enabled()  # EXECNET_DEBUG is read once, at import


class RemoteStatus:
    """What remote_status() reports: ``numchannels``, ``numexecuting``, ``execmodel``.

    >>> RemoteStatus(numchannels=1, numexecuting=0, execmodel="thread")
    <RemoteStatus numchannels=1 numexecuting=0 execmodel='thread'>
    """

    def __init__(
        self, numchannels: int = 0, numexecuting: int = 0, execmodel: str = "", **extra: Any
    ) -> None:
        self.numchannels = numchannels
        self.numexecuting = numexecuting
        self.execmodel = execmodel
        self.__dict__.update(extra)

    def __repr__(self) -> str:
        return (
            f"<RemoteStatus numchannels={self.numchannels} "
            f"numexecuting={self.numexecuting} execmodel={self.execmodel!r}>"
        )


class _ChannelHook:
    """execnet_serial's ChannelHook for one gateway: channels travel as their ids."""

    channel_type: type = Channel

    def __init__(self, gateway: BaseGateway) -> None:
        self._gateway = weakref.ref(gateway)

    def channel_id(self, channel: Any) -> int:
        if channel.gateway is not self._gateway():
            raise DumpError(f"{channel!r} belongs to another gateway; it cannot be sent here")
        return int(channel.id)

    def channel_from_id(self, channel_id: int) -> Any:
        gateway = self._gateway()
        assert gateway is not None
        return gateway._channel_from_id(channel_id)


class BaseGateway(Receiving):
    """One end of a connection: remote_exec, channels, status, exit.

    ``opener=True`` on the side that opened the connection (its channel ids are odd,
    the other side's even). The receiver starts at once: a subclass sets its own
    attributes before calling ``super().__init__``.

    ``max_frame`` is the largest frame payload (in bytes) this end sends or accepts
    (default ``DEFAULT_MAX_FRAME``, 1 GiB; 1 MiB to 4 GiB - 1): an item over it is
    refused in ``send()`` (FrameTooLarge, nothing written), and a frame over it from
    the other side closes the connection at its header, waking every waiter with an
    EOFError that says why. Both ends should use the same limit (transports hand it to
    the remote side with the bootstrap).

    Both ends in one process (normally a transport starts the other interpreter, which
    runs ``serve``):

    >>> import socket, threading
    >>> from execnet_channel import BaseGateway, SocketIO, serve
    >>> here, there = socket.socketpair()
    >>> kwargs = {"exit_process": False}
    >>> remote = threading.Thread(target=serve, args=(SocketIO(there), "remote"), kwargs=kwargs)
    >>> remote.start()
    >>> gateway = BaseGateway(SocketIO(here), "gw0", opener=True)
    >>> gateway.remote_exec("channel.send(42)").receive(10)
    42
    >>> gateway.remote_status().numexecuting
    0
    >>> gateway.exit(); gateway.join(10); remote.join(10)
    >>> here.close(); there.close()
    """

    _receiver_name = "receiver"
    _aio_room: Any = None  # execnet_channel.aio's writer state, made on its first send
    _aio_reader: Any = None  # and its reading state (False: coroutines never read)
    #: ``watch(wait, timeout)``, when set, runs every wait of a channel for the other
    #: side (serve() under main_thread_only sets it, to see its task wait)
    _watch_wait: Optional[Callable[[Callable[[Optional[float]], Any], Optional[float]], Any]] = None

    def __init__(
        self, io: IO, id: str, *, opener: bool, max_frame: int = _frames.DEFAULT_MAX_FRAME
    ) -> None:
        self._io = io
        self.id = id
        self.max_frame = _frames.check_max_frame(max_frame)
        self.execmodel: ExecModel = io.execmodel
        self._opener = opener
        self._ids = itertools.count(1 if opener else 2, 2)
        self._refs: Dict[int, weakref.ReferenceType[Channel]] = {}
        self._early: Dict[int, Channel] = {}  # the other side's channels we got items for first
        self._callbacks: Dict[int, Channel] = {}  # channels with a callback live until closed
        self._collected: set[int] = set()  # the other side's channels we dropped
        self._pending_last: List[int] = []  # LAST_MESSAGE frames of collected channels
        model = self.execmodel
        self._writelock = model.Lock()
        self._receivelock = model.RLock()
        self._receiver_done = model._event()
        self._strconfig: Tuple[bool, bool] = _DEFAULT_STRCONFIG
        self._hook = _ChannelHook(self)
        self._exited = False
        self._lost: Optional[str] = None  # why the connection ended, once it has
        self._death: Optional[NotProperlyTerminated] = None  # the remote died unasked
        self._closed_for_sending = False  # _exited or _lost: checked by every send
        self._receiver_ident: Optional[int] = None
        self._output: Any = None  # an _output.OutputReceiver once forward_output() ran
        # Remote import on demand (_importer): the names this end allowed the other side
        # to import from it (opener), and the finder serving them (the other side).
        self._allowed_imports: set[str] = set()
        self._importer: Any = None
        # called (in the receiver) once it has ended: see _when_receiver_done
        self._done_callbacks: List[Callable[[], object]] = []
        self._buffered = _is_buffered(io)
        self._init_receiving(self._buffered, opener)
        self._start_receiver()

    def _start_receiver(self) -> None:
        if trace_enabled():
            trace(f"gateway {self.id}: starting {self._receiver_name} over {self._io!r}")
        self.execmodel.start(self._receive_loop)

    def __repr__(self) -> str:
        live = "receive-live" if self.hasreceiver() else "not-receiving"
        return (
            f"<{self.__class__.__name__} id={self.id!r} {live}, "
            f"{self.execmodel.backend} model, {self._numchannels()} active channels>"
        )

    # -- channels --------------------------------------------------------------------

    def newchannel(self) -> Channel:
        """A new channel with a fresh id; send it through another channel to use it."""
        channel = Channel(self, next(self._ids))
        self._register(channel)
        if self._lost is not None:
            channel._on_connection_lost(EOFError(self._lost))
        return channel

    def _register(self, channel: Channel) -> None:
        channel_id = channel.id
        refs = self._refs

        def forget(_: object, channel_id: int = channel_id) -> None:
            if refs.get(channel_id) is ref:
                del refs[channel_id]

        ref = weakref.ref(channel, forget)
        refs[channel_id] = ref

    def _is_mine(self, channel_id: int) -> bool:
        return (channel_id % 2 == 1) == self._opener

    def _lookup(self, channel_id: int, create: bool = True) -> Optional[Channel]:
        """The channel a frame is for; None when it is gone (its frames are dropped)."""
        ref = self._refs.get(channel_id)
        if ref is not None:
            channel = ref()
            if channel is not None:
                return channel
        if (
            not create
            or self._is_mine(channel_id)
            or channel_id in self._collected
            or channel_id <= 0
        ):
            return None
        # The other side made this channel and wrote on it before sending it to us:
        # keep it (and its items) until the channel itself arrives.
        channel = self._early[channel_id] = Channel(self, channel_id)
        self._register(channel)
        return channel

    def _channel_from_id(self, channel_id: int) -> Channel:
        """The ChannelHook's way in: a channel arriving inside a value."""
        channel = self._lookup(channel_id)
        if channel is None:
            # a channel we dropped (or a dead id): give a closed one
            channel = Channel(self, channel_id)
            channel._on_remote_close(None, sendonly=False)
            return channel
        self._early.pop(channel_id, None)
        return channel

    def _keep_for_callback(self, channel: Channel) -> None:
        self._callbacks[channel.id] = channel

    def _release_callback(self, channel: Channel) -> None:
        self._callbacks.pop(channel.id, None)

    def _channel_collected(self, channel: Channel) -> None:
        """Called by Channel.__del__: tell the other side nobody listens here any more."""
        if channel._sent_close or channel._closed or self._lost is not None or self._exited:
            return
        if not self._is_mine(channel.id):
            self._collected.add(channel.id)
        # __del__ may run inside a send holding the write lock: never block on it here
        self._pending_last.append(channel.id)
        self._flush_pending()

    def _flush_pending(self) -> None:
        while self._pending_last and self._writelock.acquire(False):
            try:
                if self._closed_for_sending:
                    del self._pending_last[:]
                while self._pending_last:
                    channel_id = self._pending_last.pop()
                    header = _frames.HEADER.pack(_frames.CHANNEL_LAST_MESSAGE, channel_id, 0)
                    try:
                        self._io.write(header)
                    except OSError:
                        pass
            finally:
                self._writelock.release()

    def _numchannels(self) -> int:
        count = 0
        for ref in list(self._refs.values()):
            channel = ref()
            if channel is not None and not channel._closed:
                count += 1
        return count

    def _all_channels(self) -> List[Channel]:
        channels = [ref() for ref in list(self._refs.values())]
        return [channel for channel in channels if channel is not None]

    # -- sending ---------------------------------------------------------------------

    def _dumps(self, obj: object) -> bytes:
        return dumps_payload(obj, self._hook)

    def _send(self, kind: int, channel_id: int, payload: bytes = b"") -> None:
        """Write one whole frame; OSError once the connection is gone, FrameTooLarge
        (nothing written) for a payload over ``max_frame``."""
        size = len(payload)
        if size > self.max_frame:
            if kind != _frames.CHANNEL_CLOSE_ERROR:
                raise self._too_large(kind, channel_id, size)
            payload = self._shortened_error(payload)
            size = len(payload)
        header = _pack_header(kind, channel_id, size)
        if _TRACING and kind != _frames.OUTPUT:  # (a trace on stderr would be forwarded)
            trace(f"gateway {self.id}: sending {_frames.describe_frame(kind, channel_id, size)}")
        self._write_frame([header, payload], size)

    def _send_item(self, channel_id: int, item: object) -> None:
        """Write one CHANNEL_DATA frame: the header goes in front of the encoder's parts."""
        parts, size = self._item_frame(channel_id, item)
        self._write_frame(parts, size)

    def _item_frame(self, channel_id: int, item: object) -> Tuple[List[bytes], int]:
        """The parts of ``item``'s CHANNEL_DATA frame (header first) and the payload's
        size; DumpError or FrameTooLarge here, before anything is sent."""
        parts = encode_parts(item, self._hook)
        size = sum(map(len, parts))
        if size > self.max_frame:
            raise self._too_large(_DATA, channel_id, size)
        parts[0] = _pack_header(_DATA, channel_id, size)
        if _TRACING:
            trace(f"gateway {self.id}: sending {_frames.describe_frame(_DATA, channel_id, size)}")
        return parts, size

    def _too_large(self, kind: int, channel_id: int, size: int) -> _frames.FrameTooLarge:
        what = "an item" if kind == _DATA else f"a {_frames.FRAME_NAMES[kind]} frame"
        return _frames.FrameTooLarge(
            f"gateway {self.id!r}: {what} of {_frames.describe_size(size)} for channel "
            f"{channel_id} is over the maximum frame size, max_frame="
            f"{_frames.describe_size(self.max_frame)}; nothing was sent (send big data in "
            "pieces, or raise max_frame on both sides: the spec's max_frame= key)",
            size,
            self.max_frame,
        )

    def _shortened_error(self, payload: bytes) -> bytes:
        """The payload of a close-with-error text too big for a frame, cut to fit (a
        failing task must still close its channel)."""
        text = str(self._loads(memoryview(payload)))
        keep = self.max_frame // 10  # characters of at most 4 bytes each, twice
        note = f"\n[... {len(text) - 2 * keep} characters cut: over the maximum frame size]\n"
        return self._dumps(text[:keep] + note + text[-keep:])

    def _write_frame(self, parts: List[bytes], size: int) -> None:
        """Write a frame given as parts (header first; ``size``: the payload's bytes):
        joined once when small, else written as they are (a big item is not copied)."""
        with self._writelock:
            self._write_locked(parts, size)
        if self._pending_last:
            self._flush_pending()

    def _write_locked(self, parts: List[bytes], size: int) -> None:
        self._check_sending()
        if size < _SMALL or len(parts) > _MAX_WRITEV or not self._buffered:
            self._io.write(b"".join(parts))
        else:
            self._io.writev(parts)  # type: ignore[attr-defined]

    def _check_sending(self) -> None:
        """OSError once the connection is closed for sending (holding the write lock)."""
        if self._closed_for_sending:
            raise OSError(
                f"cannot send to gateway {self.id!r}: "
                + ("it has exited" if self._exited else str(self._lost))
            )

    # -- remote execution ------------------------------------------------------------

    def remote_exec(self, source: object, **kwargs: Any) -> Channel:
        """Run ``source`` on the other side with a global ``channel`` connected to the
        returned channel.

        ``source`` is a string (dedented), a function (its source is sent and it is
        called as ``f(channel, **kwargs)``) or a module (its whole source runs).
        """
        module = getattr(source, "__module__", None) if callable(source) else None
        allowed = isinstance(module, str) and module.partition(".")[0] in self._allowed_imports
        if not allowed or module == "__main__":
            module = None
        spec = make_spec(source, kwargs, module_globals=module is not None)
        spec.module = module  # the remote runs the function with its module's globals
        channel = self.newchannel()
        self._send(_frames.CHANNEL_EXEC, channel.id, self._dumps(spec.payload()))
        return channel

    def remote_status(self) -> RemoteStatus:
        """numchannels, numexecuting and execmodel of the other side (its receiver
        answers, so a busy remote still answers at once)."""
        answer = self._request(_frames.STATUS)
        return RemoteStatus(**answer)

    def _remote_info(self) -> Dict[str, Any]:
        """The other interpreter's executable, version_info, platform, cwd and pid."""
        return dict(self._request(_frames.INFO))

    def _request(self, kind: int) -> Dict[str, Any]:
        channel = self.newchannel()
        self._send(kind, channel.id)
        answer = channel.receive()
        assert isinstance(answer, dict)
        return answer

    def forward_output(
        self,
        callback: Optional[Callable[[str, bytes], object]] = None,
        *,
        output: bool = True,
        logging: Union[bool, int, str] = False,
    ) -> None:
        """Have what the other process writes to its fds 1 and 2 (and, with
        ``logging``, its log records) sent here over this gateway's own stream.

        Everything reaches fds 1/2: ``print``, ``os.write(1, ...)``, C code, child
        processes. Each line goes to ``callback(stream, line)`` (``stream`` is
        ``"stdout"`` or ``"stderr"``, ``line`` the exact bytes with their newline; a
        last line without one comes when the remote ends), called in the receiver: keep
        it short. Without a callback (or once it raised: reported once) lines go to
        ``sys.stderr`` prefixed ``[<id>] `` or ``[<id>:err] ``, undecodable bytes
        replaced. ``logging``: True forwards the records the remote's root logger
        passes; a level (``"INFO"``, ``20``) also sets the remote root logger's level
        to it. Records are emitted here on the logger ``execnet.remote.<id>`` with
        their level, message, exception text, time and thread name. ``output=False,
        logging=False`` turns it off. A remote printing faster than this side takes
        it is slowed down, as by a pipe (at most a window of 1 MiB is in flight).

        >>> gw.forward_output()                                  # doctest: +SKIP
        >>> gw.remote_exec("print('hi')").waitclose()            # doctest: +SKIP
        [gw0] hi
        """
        from . import _output

        level = _log_level(logging)
        if self._output is None:
            self._output = _output.OutputReceiver(self.id, callback)
        elif output or level is not None:  # (turning it off: what is left goes where it went)
            self._output.callback = callback
        self._send(_frames.OUTPUT_CONTROL, 0, self._dumps((bool(output), level, os.getpid())))

    def reconfigure(self, py2str_as_py3str: bool = True, py3str_as_py2str: bool = False) -> None:
        """String coercion for the values this gateway and the other side receive."""
        self._strconfig = (py2str_as_py3str, py3str_as_py2str)
        self._send(_frames.RECONFIGURE, 0, self._dumps(self._strconfig))

    def _status(self) -> Dict[str, Any]:
        return {
            "numchannels": self._numchannels(),
            "numexecuting": self._numexecuting(),
            "execmodel": self.execmodel.backend,
        }

    def _numexecuting(self) -> int:
        return 0

    def _info(self) -> Dict[str, Any]:
        return {
            "executable": sys.executable,
            "version_info": tuple(sys.version_info),
            "platform": sys.platform,
            "cwd": os.getcwd(),
            "pid": os.getpid(),
        }

    def _import_request(self, request: Tuple[str, ...]) -> Any:
        """Ask the opener for a module or a package file (the importer's way out): the
        answer, a dict; EOFError/OSError once the connection is gone."""
        channel = self.newchannel()
        self._send(_frames.IMPORT_REQUEST, channel.id, self._dumps(request))
        return channel.receive()

    def _on_import_request(self, channel_id: int, request: Any) -> None:
        """The other side asks for a module (transports serve them: override)."""
        message = f"gateway {self.id!r} serves no imports"
        self._answer_import(channel_id, {"error": ("ImportError", message)})

    def _answer_import(self, channel_id: int, answer: Dict[str, Any]) -> None:
        """Send the answer to an import request (nothing if the asker is gone)."""
        self._answer(_frames.IMPORT_ANSWER, channel_id, answer)

    def _send_allow_imports(self, names: Tuple[str, ...]) -> None:
        """Let the other side import these top-level names from this end (the names
        this end serves: ``_allowed_imports``)."""
        self._allowed_imports.update(names)
        self._send(_frames.IMPORT_ALLOW, 0, self._dumps(tuple(names)))

    def _on_allow_imports(self, names: Any) -> None:
        """The opener allows top-level names: the finder on sys.meta_path serves them."""
        if type(names) is not tuple or len(names) > 10000:
            raise ValueError(f"not a tuple of names: {names!r:.100}")
        for name in names:
            if type(name) is not str or not name.isidentifier():
                raise ValueError(f"not a top-level module name: {name!r:.100}")
        importer = self._importer
        if importer is None:
            from ._importer import RemoteImporter

            importer = self._importer = RemoteImporter(self)
            sys.meta_path.append(importer)
        importer.allow(list(names))

    def _on_exec(self, channel: Channel, spec: ExecSpec) -> None:
        """An exec request arrived; this end runs no code (serve() overrides this)."""
        channel._close(f"gateway {self.id!r} does not execute code from the other side")

    def _on_terminate(self) -> None:
        """The other side asked this end to stop (serve() overrides this)."""

    # -- ending ----------------------------------------------------------------------

    def exit(self) -> None:
        """Ask the other side to terminate and close the sending direction (idempotent)."""
        with self._writelock:
            if self._exited:
                return
            self._exited = True
            self._closed_for_sending = True
            if trace_enabled():
                trace(f"gateway {self.id}: exit")
            if self._lost is None:
                try:  # the other side is gone already
                    self._io.write(_frames.HEADER.pack(_frames.GATEWAY_TERMINATE, 0, 0))
                except OSError:
                    pass
            self._io.close_write()
        self._give_back()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait (at most ``timeout`` seconds) for the receiver to finish.

        Called from the receiver itself (in a callback) it returns at once.
        """
        if self.execmodel.get_ident() == self._receiver_ident:
            return
        self._give_back()
        self._receiver_done.wait(timeout)

    def _when_receiver_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the receiver has ended: from the receiver, or here at
        once if it has ended already (maybe both: the callback must be idempotent)."""
        self._done_callbacks.append(callback)
        if self._receiver_done.is_set():
            callback()

    def hasreceiver(self) -> bool:
        """True while the receiver is running."""
        return not self._receiver_done.is_set()

    def _describe_eof(self) -> str:
        """The text of the EOFError waiters get when the connection is lost."""
        return f"gateway {self.id!r}: connection to the other side lost"

    def _describe_death(self) -> Optional[str]:
        """Override: the post-mortem when the remote ended without being asked to.

        Called after _describe_eof() when the connection is lost; None (the default)
        when it ended as asked or nothing is known of it.
        """
        return None

    # -- receiving -------------------------------------------------------------------

    def _receive_loop(self) -> None:
        self._receiver_ident = self.execmodel.get_ident()
        reason = "terminated by the other side"
        why: Optional[str] = None
        try:
            self._receive_frames()
        except EOFError as exc:
            reason = f"end of stream ({exc})"
        except BaseException as exc:
            reason = f"receiver failed: {exc!r}"
            if isinstance(exc, _frames.FrameError):
                # The stream cannot be trusted past a bad frame: this gateway ends (and
                # only this one), and its waiters learn why.
                why = (
                    f"gateway {self.id!r}: connection closed, "
                    f"corrupt stream from the other side: {exc}"
                )
                sys.stderr.write(f"[{os.getpid()}] execnet {why}\n")
            elif not isinstance(exc, OSError):
                import traceback

                sys.stderr.write(
                    f"[{os.getpid()}] execnet gateway {self.id!r}: receiver failed:\n"
                    + traceback.format_exc()
                )
        finally:
            if trace_enabled():
                trace(f"gateway {self.id}: receiver ends: {reason}")
            self._connection_lost(why)
            self._receiver_done.set()
            for callback in list(self._done_callbacks):  # (a join may remove its own)
                callback()

    def _connection_lost(self, why: Optional[str] = None) -> None:
        """Wake every waiter with EOFError(``why``, or ``_describe_eof()``) and end."""
        with self._receivelock:
            if self._lost is not None:
                return
            if self._output is not None:
                self._output.flush()  # the remote's last partial lines, before any EOFError
            self._lost = why if why is not None else self._describe_eof()
            self._closed_for_sending = True
            error = EOFError(self._lost)
            death = self._describe_death()
            if death is not None:
                self._death = NotProperlyTerminated(death, error)
            for channel in self._all_channels() + list(self._early.values()):
                channel._on_connection_lost(error)
        if self._importer is not None:
            try:
                sys.meta_path.remove(self._importer)
            except ValueError:
                pass
        self._after_connection_lost()

    def _after_connection_lost(self) -> None:
        """Hook for serve(): stop executing."""

    def _loads(self, payload: memoryview, channel: Optional[Channel] = None) -> Any:
        """An item (with the channel's string coercion) or, without a channel, a
        control payload (always the default coercion: the protocol's own strings)."""
        if channel is None:
            config = _DEFAULT_STRCONFIG
        elif channel._strconfig is not None:
            config = channel._strconfig
        else:
            config = self._strconfig
        return loads_payload(
            payload, py2str_as_py3str=config[0], py3str_as_py2str=config[1], hook=self._hook
        )

    def _dispatch(self, kind: int, channel_id: int, payload: memoryview, at: int) -> bool:
        """Handle one frame (holding the receive lock); True: stop receiving.

        ``at``: where the frame began in the stream (for the error if it is bad).
        """
        try:
            return self._handle(kind, channel_id, payload)
        except (LoadError, TypeError, ValueError) as exc:
            # a control payload that does not load or fit: the stream cannot be trusted
            raise _frames.FrameError(
                f"{_frames.FRAME_NAMES[kind]} frame on channel {channel_id} at byte {at} "
                f"of the stream does not load: {exc}"
            ) from exc

    def _handle(self, kind: int, channel_id: int, payload: memoryview) -> bool:
        if kind == _frames.CHANNEL_DATA:
            channel = self._lookup(channel_id)
            if channel is not None:
                try:
                    item = self._loads(payload, channel)
                except Exception as exc:
                    self._bad_item(channel, exc)
                else:
                    channel._deliver(item)
            return False
        if trace_enabled():
            frame = _frames.describe_frame(kind, channel_id, len(payload))
            trace(f"gateway {self.id}: received {frame}")
        if kind in (
            _frames.CHANNEL_CLOSE,
            _frames.CHANNEL_CLOSE_ERROR,
            _frames.CHANNEL_LAST_MESSAGE,
        ):
            # no channel made for a close: the other side's unsent channels end so
            channel = self._lookup(channel_id, create=False)
            if channel is None:
                if kind != _frames.CHANNEL_LAST_MESSAGE:
                    self._collected.discard(channel_id)
                return False
            error = None
            if kind == _frames.CHANNEL_CLOSE_ERROR:
                error = RemoteError(str(self._loads(payload)))
            channel._on_remote_close(error, sendonly=kind == _frames.CHANNEL_LAST_MESSAGE)
        elif kind == _frames.CHANNEL_EXEC:
            channel = self._channel_from_id(channel_id)
            try:
                spec = ExecSpec(*self._loads(payload))
            except Exception as exc:
                channel._close(f"could not load the exec request: {exc!r}")
            else:
                self._on_exec(channel, spec)
        elif kind == _frames.GATEWAY_TERMINATE:
            self._on_terminate()
            return True
        elif kind == _frames.STATUS:
            self._answer(_frames.STATUS_ANSWER, channel_id, self._status())
        elif kind == _frames.INFO:
            self._answer(_frames.INFO_ANSWER, channel_id, self._info())
        elif kind in (_frames.STATUS_ANSWER, _frames.INFO_ANSWER):
            channel = self._lookup(channel_id)
            if channel is not None:
                channel._deliver(self._loads(payload))
                channel._on_remote_close(None, sendonly=False)
        elif kind in (_frames.OUTPUT, _frames.LOG_RECORD):
            self._on_output_frame(kind, channel_id, payload)
        elif kind in (_frames.OUTPUT_CONTROL, _frames.OUTPUT_ACK):
            self._on_output_control(kind, channel_id, payload)
        elif kind == _frames.IMPORT_REQUEST:
            if not self._opener or channel_id <= 0 or self._is_mine(channel_id):
                raise ValueError("an import request goes from the remote to the opener")
            self._on_import_request(channel_id, self._loads(payload))
        elif kind == _frames.IMPORT_ANSWER:
            if self._opener or not self._is_mine(channel_id):
                raise ValueError("an import answer goes from the opener to a request")
            channel = self._lookup(channel_id, create=False)
            if channel is not None:
                channel._deliver(self._loads(payload))
                channel._on_remote_close(None, sendonly=False)
        elif kind == _frames.IMPORT_ALLOW:
            if self._opener:
                raise ValueError("imports are allowed by the opener only")
            self._on_allow_imports(self._loads(payload))
        elif kind == _frames.RECONFIGURE:
            py2str_as_py3str, py3str_as_py2str = self._loads(payload)
            config = (bool(py2str_as_py3str), bool(py3str_as_py2str))
            if channel_id == 0:
                self._strconfig = config
            else:
                channel = self._lookup(channel_id, create=False)
                if channel is not None:
                    channel._strconfig = config
        return False

    def _on_output_frame(self, kind: int, channel_id: int, payload: memoryview) -> None:
        """OUTPUT / LOG_RECORD from the other side: deliver, and ack what was used."""
        from . import _output

        receiver = self._output
        if receiver is None:  # never asked for: the default destination
            receiver = self._output = _output.OutputReceiver(self.id)
        if kind == _frames.OUTPUT:
            count = receiver.output(channel_id, bytes(payload))
        else:
            count = receiver.record(self._loads(payload), len(payload))
        if count:
            try:
                self._send(_frames.OUTPUT_ACK, min(count, _output.WINDOW))
            except OSError:
                pass

    def _on_output_control(self, kind: int, channel_id: int, payload: memoryview) -> None:
        """OUTPUT_CONTROL / OUTPUT_ACK: only the serving side forwards output."""

    def _answer(self, kind: int, channel_id: int, answer: Dict[str, Any]) -> None:
        try:  # the asker is gone
            self._send(kind, channel_id, self._dumps(answer))
        except OSError:
            pass

    def _bad_item(self, channel: Channel, exc: Exception) -> None:
        text = f"channel {channel.id}: could not load an item: {exc!r}"
        channel._on_remote_close(RemoteError(text), sendonly=False)
        channel._close(text)


def _log_level(logging: Union[bool, int, str]) -> Optional[int]:
    """OUTPUT_CONTROL's log level: None (off), 0 (on, the remote's levels kept), a level."""
    if logging is False or logging is None:
        return None
    if logging is True:
        return 0
    if isinstance(logging, int) and logging >= 0:
        return logging
    if isinstance(logging, str):
        import logging as _logging

        level = _logging.getLevelName(logging.upper())
        if isinstance(level, int):
            return level
    raise ValueError(
        f"logging={logging!r}: expected True/False, a level number or a level name such as 'INFO'"
    )
