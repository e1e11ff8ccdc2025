"""TLSSocketIO: the gateway stream over a TLS socket (``ssl.SSLSocket``, handshake done).

OpenSSL does not allow one connection to be read and written by two threads at the
same time, and a gateway does exactly that (the receiver reads while senders write).
So the socket is non-blocking and every TLS read or write runs under one lock, which
is never held while waiting: a reader or writer that would block lets go of the lock,
waits for the socket (poll, or the execution model's hub), and tries again.

A direction is closed at the TCP level (``shutdown``) rather than with TLS's
close_notify: Python's ssl module cannot send close_notify and go on reading (its
unwrap() reads the peer's close_notify and fails on data still in flight). The peer
sees the end as it sees a plain socket's end; what an attacker on the path can do with
that (cut the stream early) it can do anyway by resetting the connection.
"""

from __future__ import annotations

from ._execmodels import ExecModel
from ._io import SocketIO

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Callable, Optional, Sequence, Tuple, Type, Union

__all__ = ["TLSSocketIO"]

# Bytes per TLS write: big enough that bulk data costs few calls, small enough that a
# reader waiting for the lock is not held up long (OpenSSL cuts it into 16 KiB records).
_WRITE_CHUNK = 256 * 1024
# Frames up to this size are joined and written at once (one TLS record, one syscall).
_JOIN_LIMIT = 64 * 1024
# The most one read asks for (a read returns at most one 16 KiB record anyway).
_READ_LIMIT = 256 * 1024


class TLSSocketIO(SocketIO):
    """An IO over a connected ``ssl.SSLSocket`` whose handshake is done.

    Safe for one reader and one writer at the same time (the gateway's receiver and its
    senders); works with every execution model (greenlet models wait through their hub).

    >>> io = TLSSocketIO(context.wrap_socket(sock, server_hostname="host"), "thread")
    """

    def __init__(self, sock: ssl.SSLSocket, execmodel: Union[str, ExecModel] = "thread") -> None:
        import ssl

        super().__init__(sock, execmodel)
        self.sock: ssl.SSLSocket = sock
        self._want_read: Type[BaseException] = ssl.SSLWantReadError
        self._want_write: Type[BaseException] = ssl.SSLWantWriteError
        self._ended: Tuple[Type[BaseException], ...] = (ssl.SSLZeroReturnError, ssl.SSLEOFError)
        self._tls = self.execmodel.Lock()
        self._fd = sock.fileno()
        sock.setblocking(False)

    def __repr__(self) -> str:
        return f"<TLSSocketIO {self.sock!r}>"

    # -- waiting without the lock ----------------------------------------------------

    def _wait(self, readable: bool, timeout: Optional[float] = None) -> bool:
        """Wait until the socket is readable (or writable); False after ``timeout``."""
        model = self.execmodel
        if model.cooperative:
            if readable:
                model._wait_readable(self._fd)
            else:
                model._wait_writable(self._fd)
            return True
        import select

        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(self._fd, select.POLLIN if readable else select.POLLOUT)
            if timeout is None:
                return bool(poller.poll())
            return bool(poller.poll(max(0, int(timeout * 1000 + 0.999))))
        fds = [self._fd]
        ready = (
            select.select(fds, [], [], timeout) if readable else select.select([], fds, [], timeout)
        )
        return bool(ready[0] or ready[1])

    def _call(self, operation: Callable[[], int]) -> int:
        """Run a TLS read or write under the lock until it does not need to wait."""
        while True:
            with self._tls:
                try:
                    return operation()
                except self._want_read:
                    readable = True
                except self._want_write:
                    readable = False
            self._wait(readable)

    # -- reading ---------------------------------------------------------------------

    def _read_some(self, numbytes: int) -> bytes:
        if self._read_closed:
            raise EOFError("the TLS socket is closed for reading")
        data: bytes = b""
        numbytes = min(numbytes, _READ_LIMIT)  # recv(n) allocates n bytes up front

        def recv() -> int:
            nonlocal data
            data = self.sock.recv(numbytes)
            return len(data)

        if not self._receive(recv):
            raise EOFError("the socket was closed by the other side")
        return data

    def readinto(self, buffer: memoryview) -> int:
        if self._pending:
            return self._take_pending(buffer)
        if self._read_closed:
            raise EOFError("the TLS socket is closed for reading")
        count = self._receive(lambda: self.sock.recv_into(buffer))
        if not count:
            raise EOFError("the socket was closed by the other side")
        return count

    def _receive(self, operation: Callable[[], int]) -> int:
        try:
            return self._call(operation)
        except self._ended:
            return 0  # the peer's close_notify, or the TCP end without one
        except OSError as exc:
            raise EOFError(f"reading the TLS socket failed: {exc}") from exc

    def poll_readable(self, timeout: Optional[float]) -> bool:
        """True once a read would not block: decrypted bytes are buffered, or the socket
        has data (maybe only part of a record: the read then waits for the rest)."""
        if self._pending:
            return True
        with self._tls:
            try:
                if self.sock.pending():
                    return True
            except (OSError, ValueError):
                return True  # closed: the read reports it
        return self._wait(True, timeout)

    # -- writing ---------------------------------------------------------------------

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Write all of ``data``; OSError once the stream is gone."""
        if self._write_closed:
            raise BrokenPipeError("the TLS socket is closed for writing")
        view = memoryview(data).cast("B")
        while view:
            # A write that had to wait is retried with the same bytes, as OpenSSL wants.
            view = view[self._call(self._sender(view[:_WRITE_CHUNK])) :]

    def _sender(self, chunk: memoryview) -> Callable[[], int]:
        return lambda: self.sock.send(chunk)

    def writev(self, buffers: Sequence[Union[bytes, bytearray, memoryview]]) -> None:
        """Write all ``buffers`` in order; a small frame as one TLS record."""
        if sum(len(buf) for buf in buffers) <= _JOIN_LIMIT:
            self.write(b"".join(buffers))
            return
        for buf in buffers:
            if len(buf):
                self.write(buf)

    # -- closing ---------------------------------------------------------------------

    def close_read(self) -> None:
        if not self._read_closed:
            self._read_closed = True
            self._tcp_shutdown(0)  # SHUT_RD

    def close_write(self) -> None:
        if not self._write_closed:
            self._write_closed = True
            self._tcp_shutdown(1)  # SHUT_WR

    def _tcp_shutdown(self, how: int) -> None:
        # socket.socket's own shutdown: SSLSocket.shutdown would drop the TLS state, and
        # the other direction still needs it.
        import socket

        try:  # noqa: SIM105 (contextlib: slow to import on a remote) # the peer is gone already
            socket.socket.shutdown(self.sock, how)
        except OSError:
            pass
        if self._read_closed and self._write_closed:
            try:  # noqa: SIM105 (contextlib: slow to import on a remote)
                self.sock.close()
            except OSError:
                pass
