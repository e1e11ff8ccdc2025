"""TLS for socket gateways: TLSConnection (a TLS stream over a socket) and TLSSocketIO.

TLSConnection runs TLS with ``ssl.SSLObject`` over two memory BIOs and does the socket
reads and writes itself, in big pieces: a 256 KiB write is one send() of all its
records, and one recv() brings every record that has arrived. (``ssl.SSLSocket``
writes and reads each 16 KiB record with system calls of its own, waking the peer for
every record: a third of the throughput.) Its raw socket is always non-blocking; the
socket-like methods ``recv``/``sendall`` wait (with ``settimeout``'s limit), while
``recv_into``/``send`` raise ``ssl.SSLWantReadError``/``SSLWantWriteError`` instead,
as a non-blocking SSLSocket would. A socket server with TLS hands one to the code a
client sends as ``clientsock``, and that code builds its gateway IO over it.

OpenSSL does not allow one connection to be read and written by two threads at once,
and a gateway does exactly that (its receiver reads while senders write). So
TLSSocketIO runs every TLS operation under one lock, which is never held while
waiting: an operation that would block lets go of the lock, waits for the socket (poll,
or the execution model's hub), and tries again.

A direction is closed at the TCP level (``shutdown``) rather than with TLS's
close_notify: Python's ssl cannot send close_notify and go on reading (its unwrap()
reads the peer's close_notify and fails on data still in flight). The peer sees the end
as it sees a plain socket's end; what an attacker on the path can do with that (cut
the stream early) it can do anyway by resetting the connection.
"""

from __future__ import annotations

import sys

from ._execmodels import ExecModel
from ._io import SocketIO
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    import socket
    import ssl
    from typing import Any, Callable, List, Optional, Sequence, Tuple, Type, Union

    Buffer = Union[bytes, bytearray, memoryview]

__all__ = ["TLSConnection", "TLSSocketIO"]

# Plaintext per TLS write: bulk data costs few calls and one send() per piece, and a
# reader waiting for the lock is not held up long (OpenSSL cuts it into 16 KiB records).
_WRITE_CHUNK = 256 * 1024
# The raw bytes one recv() may bring (many records); also the most one recv(n) returns.
_RAW_CHUNK = 256 * 1024
# Frames up to this size are joined and written at once (one TLS record).
_JOIN_LIMIT = 64 * 1024
# PyPy's SSLObject.read(n, buffer) writes to the start of a memoryview's object, not
# where the view starts (PyPy 7.3): there, records are read as bytes and copied.
_READ_INTO_VIEWS = sys.implementation.name != "pypy"


def _poller(fd: int, readable: bool) -> Callable[[Optional[float]], bool]:
    """``ready(timeout)``: True once ``fd`` is readable (writable), False after timeout."""
    import select

    if not hasattr(select, "poll"):

        def ready_select(timeout: Optional[float]) -> bool:
            fds = [fd]
            if readable:
                return bool(select.select(fds, [], [], timeout)[0])
            return bool(select.select([], fds, [], timeout)[1])

        return ready_select
    poller = select.poll()
    poller.register(fd, select.POLLIN if readable else select.POLLOUT)
    poll = poller.poll

    def ready(timeout: Optional[float]) -> bool:
        if timeout is None:
            return bool(poll())
        return bool(poll(max(0, int(timeout * 1000 + 0.999))))

    return ready


class TLSConnection:
    """A TLS connection over a connected socket (see the module docstring).

    >>> conn = TLSConnection.client(sock, context, "host.example", timeout=60)  # doctest: +SKIP
    >>> conn.sendall(b"ping"); conn.recv(4)                                     # doctest: +SKIP

    (Not run as a doctest: it needs a TLS peer; tests/execnet_channel/test_tls.py has one.)

    A server drives ``TLSConnection.server(sock, context)`` with ``do_handshake()``
    (non-blocking: it raises SSLWantReadError/SSLWantWriteError until done).
    """

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject, incoming: Any, outgoing: Any):
        import ssl

        self._sock = sock
        self._tls = tls
        self._in = incoming
        self._out = outgoing
        self._raw = bytearray(_RAW_CHUNK)
        self._rawview = memoryview(self._raw)
        self._unsent: Optional[memoryview] = None  # ciphertext the socket did not take yet
        self._drained = True  # the last recv() took less than it could: nothing more now
        self._timeout: Optional[float] = None  # for recv/sendall (the waiting methods)
        self._closed = False
        self._WantRead = ssl.SSLWantReadError
        self._WantWrite = ssl.SSLWantWriteError
        self._ended: Tuple[Type[BaseException], ...] = (ssl.SSLZeroReturnError, ssl.SSLEOFError)
        sock.setblocking(False)

    @classmethod
    def _wrap(cls, sock: socket.socket, context: ssl.SSLContext, **options: Any) -> TLSConnection:
        import ssl

        # A direction ends at the TCP level (see the module): the other direction must
        # go on, so the end of the stream without close_notify is an end, not an error
        # that breaks the connection (OpenSSL 3 makes it one unless told so; Python
        # 3.10-3.12 told it by default, 3.13 no longer does, 3.8/3.9 lack the name).
        context.options |= getattr(
            ssl, "OP_IGNORE_UNEXPECTED_EOF", 1 << 7 if ssl.OPENSSL_VERSION_INFO >= (3,) else 0
        )
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        return cls(sock, context.wrap_bio(incoming, outgoing, **options), incoming, outgoing)

    @classmethod
    def server(cls, sock: socket.socket, context: ssl.SSLContext) -> TLSConnection:
        """The server side; drive ``do_handshake()`` until it stops raising."""
        return cls._wrap(sock, context, server_side=True)

    @classmethod
    def client(
        cls,
        sock: socket.socket,
        context: ssl.SSLContext,
        server_hostname: Optional[str],
        timeout: Optional[float] = None,
    ) -> TLSConnection:
        """The client side, its handshake done (socket.timeout after `timeout` s)."""
        import ssl

        conn = cls._wrap(sock, context, server_side=False, server_hostname=server_hostname)
        conn.settimeout(timeout)
        try:
            conn._waiting(conn.do_handshake)
        except ssl.SSLError:
            try:
                conn._flush()  # our alert (a certificate that does not verify): best effort
            except OSError:
                pass
            raise
        return conn

    # -- the non-blocking core --------------------------------------------------------

    def do_handshake(self) -> None:
        """One step of the handshake; SSLWantRead/WriteError until it is done."""
        import ssl

        while True:
            self._flush()
            try:
                self._tls.do_handshake()
            except self._WantRead:
                self._queue_output()
                self._flush()
                self._feed()
                continue
            except ssl.SSLError:
                self._queue_output()  # the alert: send(b"") sends it, the peer learns why
                raise
            self._queue_output()
            self._flush()
            return

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        """Decrypted bytes into `buffer`: every record that has arrived, up to its size
        (a TLS read gives one 16 KiB record: the loop is here, not in the caller); 0 at
        the end of the stream; SSLWantReadError when none have arrived."""
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        read: Any = self._tls.read  # with a buffer it returns how many bytes
        count = 0
        while count < size:
            try:
                if _READ_INTO_VIEWS:
                    got = read(size - count, view[count:] if count else view)
                else:
                    data = read(size - count)
                    got = len(data)
                    view[count : count + got] = data
            except self._WantRead:
                if not count:
                    self._feed()  # SSLWantReadError if the socket has nothing either
                    continue
                if not self._drained:  # the last recv() filled the buffer: there is more
                    try:
                        self._feed()
                    except self._WantRead:
                        break
                    continue
                break
            except self._ended:
                break
            except OSError:  # ssl.SSLError: at the socket's end, some versions say so
                if self._in.eof:
                    break
                raise
            if not got:
                break
            count += got
        return count

    def send(self, data: Buffer) -> int:
        """Encrypt `data` and send what the socket takes (the rest goes out with the next
        call): how many bytes of `data` were taken. ``send(b"")`` only sends what is
        left; SSLWantWriteError while bytes from before still do not fit."""
        self._flush()
        if not len(data):
            return 0
        taken = int(self._tls.write(data))
        self._queue_output()
        try:
            self._flush()
        except self._WantWrite:
            pass  # taken all the same; the next send() goes on with it
        return taken

    def pending(self) -> int:
        """Bytes a read would make progress with: decrypted, or not yet decrypted."""
        return int(self._tls.pending()) + int(self._in.pending)

    def _feed(self) -> None:
        """Move what the socket has into the TLS object; SSLWantReadError if nothing."""
        try:
            count = self._sock.recv_into(self._rawview)
        except (BlockingIOError, InterruptedError):
            raise self._WantRead("the socket has nothing to read yet") from None
        self._drained = count < _RAW_CHUNK
        if count:
            self._in.write(self._rawview[:count])
        else:
            self._in.write_eof()  # the TLS object then reports the end

    def _queue_output(self) -> None:
        data = self._out.read()
        if data:
            if self._unsent:
                data = bytes(self._unsent) + data
            self._unsent = memoryview(data)

    def _flush(self) -> None:
        """Send the ciphertext waiting; SSLWantWriteError if the socket is full."""
        unsent = self._unsent
        while unsent:
            try:
                unsent = unsent[self._sock.send(unsent) :]
            except (BlockingIOError, InterruptedError):
                self._unsent = unsent
                raise self._WantWrite("the socket takes no more yet") from None
        self._unsent = None

    # -- socket-like, waiting (the bootstrap and the first stage use these) -----------

    def settimeout(self, timeout: Optional[float]) -> None:
        """Limit the waits of ``recv``, ``sendall`` and ``do_handshake`` to ``timeout``
        seconds (``socket.timeout`` then); None: no limit."""
        self._timeout = timeout

    def gettimeout(self) -> Optional[float]:
        """The limit ``settimeout`` set (None: none)."""
        return self._timeout

    def setblocking(self, blocking: bool) -> None:
        """``settimeout(None)`` if ``blocking``, else ``settimeout(0.0)`` (as a socket)."""
        self._timeout = None if blocking else 0.0

    def _waiting(self, operation: Callable[[], Any]) -> Any:
        import socket
        import time

        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        fd = self._sock.fileno()
        while True:
            try:
                return operation()
            except self._WantRead:
                readable = True
            except self._WantWrite:
                readable = False
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not _poller(fd, readable)(left):
                raise socket.timeout("timed out")

    def recv(self, bufsize: int) -> bytes:
        """Up to `bufsize` decrypted bytes, waiting for some; b"" at the end."""
        buffer = bytearray(min(bufsize, _RAW_CHUNK))
        count = self._waiting(lambda: self.recv_into(buffer))
        return bytes(buffer[:count])

    def sendall(self, data: Buffer) -> None:
        """Encrypt and send all of ``data``, waiting while the socket takes no more."""
        view = memoryview(data).cast("B")
        while view:
            view = view[self._waiting(TLSSocketIO._sender(self.send, view[:_WRITE_CHUNK])) :]
        self._waiting(lambda: self.send(b""))

    # -- the rest of a socket ----------------------------------------------------------

    def fileno(self) -> int:
        """The raw socket's descriptor (to poll it; never read or write it directly)."""
        return self._sock.fileno()

    def setsockopt(self, *args: Any) -> None:
        """``socket.setsockopt`` on the raw socket (TCP_NODELAY and the like)."""
        self._sock.setsockopt(*args)

    def getpeername(self) -> Any:
        """The peer's address, as ``socket.getpeername``."""
        return self._sock.getpeername()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, as ``ssl.SSLSocket.getpeercert``."""
        return self._tls.getpeercert(binary_form)

    def version(self) -> Optional[str]:
        """The TLS version agreed on, such as ``"TLSv1.3"``."""
        return self._tls.version()

    def cipher(self) -> Any:
        """(name, protocol, secret bits) of the cipher agreed on."""
        return self._tls.cipher()

    def shutdown(self, how: int) -> None:
        """Close a direction of the TCP connection (no close_notify: see the module)."""
        self._sock.shutdown(how)

    def close(self) -> None:
        """Close the socket (what it did not take yet is dropped: see ``send(b"")``)."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> TLSConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TLSConnection {self._tls.version()} {self._sock!r}>"


class TLSSocketIO(SocketIO):
    """A gateway IO over a TLSConnection whose handshake is done.

    Safe for one reader and one writer at the same time (the gateway's receiver and its
    senders); works with every execution model (greenlet models wait through their hub).

    >>> io = TLSSocketIO(TLSConnection.client(sock, context, "host"), "thread")  # doctest: +SKIP
    """

    def __init__(self, sock: TLSConnection, execmodel: Union[str, ExecModel] = "thread") -> None:
        import ssl

        super().__init__(sock, execmodel)  # type: ignore[arg-type]
        self.sock: TLSConnection = sock  # type: ignore[assignment]
        self._want_read: Type[BaseException] = ssl.SSLWantReadError
        self._want_write: Type[BaseException] = ssl.SSLWantWriteError
        self._tls = self.execmodel.Lock()
        self._fd = sock.fileno()
        self._pollers: List[Optional[Callable[[Optional[float]], bool]]] = [None, None]

    def __repr__(self) -> str:
        return f"<TLSSocketIO {self.sock!r}>"

    # -- waiting without the lock ----------------------------------------------------

    def _wait(self, readable: bool, timeout: Optional[float] = None, usual: bool = True) -> bool:
        """Wait until the socket is readable (or writable); False after ``timeout``.

        ``usual``: the reader waiting to read, or the writer to write; each reuses its
        poll object (one thread at a time uses it). The rare other way round (TLS
        wanting to write during a read, or to read during a write) gets a new one.
        """
        model = self.execmodel
        if model.cooperative:
            if readable:
                model._wait_readable(self._fd)
            else:
                model._wait_writable(self._fd)
            return True
        if not usual:
            return _poller(self._fd, readable)(timeout)
        poll = self._pollers[readable]
        if poll is None:
            poll = self._pollers[readable] = _poller(self._fd, readable)
        return poll(timeout)

    # -- reading ---------------------------------------------------------------------

    def _read_some(self, numbytes: int) -> bytes:
        if self._read_closed:
            raise EOFError("the TLS socket is closed for reading")
        buffer = bytearray(min(numbytes, _RAW_CHUNK))  # grows with what may come only
        count = self._fill(memoryview(buffer))
        return bytes(buffer[:count])

    def readinto(self, buffer: memoryview) -> int:
        """Read what is there (at least one byte, at most ``len(buffer)``)."""
        if self._pending:
            return self._take_pending(buffer)
        if self._read_closed:
            raise EOFError("the TLS socket is closed for reading")
        return self._fill(buffer)

    def _fill(self, buffer: memoryview) -> int:
        # A TLS read returns one record (16 KiB at most): read every record that is
        # there in one go, so a big frame costs a few calls here, not one per record.
        size = len(buffer)
        recv_into = self.sock.recv_into
        want_read, want_write = self._want_read, self._want_write
        while True:
            count = 0
            end = False
            with self._tls:
                try:
                    while count < size:
                        got = recv_into(buffer[count:] if count else buffer)
                        if not got:
                            end = True
                            break
                        count += got
                except want_read:
                    readable = True
                except want_write:
                    readable = False
                except OSError as exc:  # ssl.SSLError too: a record that does not verify
                    if not count:
                        raise EOFError(f"reading the TLS connection failed: {exc}") from exc
            if count:
                return count
            if end:
                raise EOFError("the socket was closed by the other side")
            self._wait(readable, usual=readable)

    def poll_readable(self, timeout: Optional[float]) -> bool:
        """True once a read would not block: bytes are buffered in the TLS connection,
        or the socket has some (maybe only part of a record: the read then waits)."""
        if self._pending:
            return True
        with self._tls:
            if self.sock.pending():
                return True
        return self._wait(True, timeout)

    # -- writing ---------------------------------------------------------------------

    def _call(self, operation: Callable[[], int]) -> int:
        """Run a TLS write under the lock until it does not need to wait."""
        while True:
            with self._tls:
                try:
                    return operation()
                except self._want_read:
                    readable = True
                except self._want_write:
                    readable = False
            self._wait(readable, usual=not readable)

    def write(self, data: Buffer) -> None:
        """Write all of ``data``; OSError once the stream is gone."""
        if self._write_closed:
            raise BrokenPipeError("the TLS socket is closed for writing")
        send = self.sock.send
        view = memoryview(data).cast("B")
        while view:
            view = view[self._call(self._sender(send, view[:_WRITE_CHUNK])) :]
        self._call(self._sender(send, b""))  # what the socket did not take yet

    @staticmethod
    def _sender(send: Callable[[Buffer], int], chunk: Buffer) -> Callable[[], int]:
        return lambda: send(chunk)

    def writev(self, buffers: Sequence[Buffer]) -> None:
        """Write all ``buffers`` in order; a small frame as one TLS record, a big one's
        header with the start of its payload (not as a record and a send() of its own)."""
        if sum(len(buf) for buf in buffers) <= _JOIN_LIMIT:
            self.write(b"".join(buffers))
            return
        head: List[Buffer] = []
        size = 0
        for index, buf in enumerate(buffers):
            if size + len(buf) > _JOIN_LIMIT:
                cut = _JOIN_LIMIT - size
                head.append(memoryview(buf).cast("B")[:cut])
                self.write(b"".join(head))
                self.write(memoryview(buf).cast("B")[cut:])
                for rest in buffers[index + 1 :]:
                    if len(rest):
                        self.write(rest)
                return
            head.append(buf)
            size += len(buf)

    # close_read/close_write: SocketIO's, through TLSConnection.shutdown (TCP level).
