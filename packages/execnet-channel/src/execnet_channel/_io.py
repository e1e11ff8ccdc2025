"""The byte stream a gateway talks over: the IO protocol and the IOs this layer ships.

A transport provides an IO (read exactly n bytes, write all bytes, close each
direction, wait for/kill the process behind). FdIO, SocketIO and StdioIO are here
because the remote side needs them too. They also offer ``readinto`` and ``writev``
(BufferedIO), which the receiver and the senders use when present: the receiver reads
big chunks and decodes every frame in them, a sender writes a frame in one call.
"""

from __future__ import annotations

import io
import os
import sys

from ._execmodels import ExecModel, get_execmodel
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    import socket
    from typing import Any, Callable, Dict, List, Optional, Sequence, Union

__all__ = ["FdIO", "SocketIO", "StdioIO"]

F_SETPIPE_SZ = 1031  # Linux fcntl; not in the fcntl module before 3.10
_READ_CHUNK = 256 * 1024  # read(n) asks the OS for at least this much: a frame header or
# a small frame then comes with what follows it in one call (the rest stays pending)


_HAVE_WRITEV = hasattr(os, "writev")


def _readv(fd: int, buffer: memoryview) -> int:
    return os.readv(fd, [buffer])


F_GETPIPE_SZ = 1032
# Pipe buffers are kernel memory charged to the user: past pipe-user-pages-soft (64 MiB
# by default) Linux gives every new pipe of that user, in any program, two pages. So
# the pipes one process raises stay within this many bytes; closing one gives its share
# back (32 MiB: 16 gateways at the usual 1 MiB pipe-max-size; later ones keep 64 KiB).
PIPE_BUDGET = 32 * 1024 * 1024


class _PipeBudget:
    """The bytes of raised pipe buffer this process may still set aside.

    Taken and given back under a lock: makegateways bootstraps gateways in threads,
    each raising its pipes, and a check and a decrement apart would let two threads
    spend the same bytes (the fcntl calls between them release the GIL).
    """

    def __init__(self, size: int) -> None:
        import _thread

        self.left = size
        self._lock = _thread.allocate_lock()

    def take(self, size: int) -> bool:
        """Set ``size`` bytes aside if that many are left."""
        with self._lock:
            if size > self.left:
                return False
            self.left -= size
            return True

    def give(self, size: int) -> None:
        """Give back bytes taken before (0: nothing)."""
        if size:
            with self._lock:
                self.left += size


_pipe_budget = _PipeBudget(PIPE_BUDGET)
_pipe_max_size: List[int] = []


def _raise_pipe_size(fd: int) -> int:
    """Grow the pipe behind ``fd`` to pipe-max-size if the budget allows; the bytes
    charged to the budget (0: not a pipe, not Linux, not allowed, or large already)."""
    try:
        import fcntl

        if not _pipe_max_size:
            with open("/proc/sys/fs/pipe-max-size") as f:
                _pipe_max_size.append(int(f.read()))
        size = _pipe_max_size[0]
        if fcntl.fcntl(fd, F_GETPIPE_SZ) >= size:
            return 0
    except (OSError, ValueError, ImportError, IndexError):
        return 0  # not a pipe, or not Linux: the default buffer works too
    budget = _pipe_budget
    if not budget.take(size):
        return 0
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:  # over pipe-user-pages-hard, or the fd closed meanwhile
        budget.give(size)
        return 0
    return size


def _release_pipe_size(charged: int) -> None:
    _pipe_budget.give(charged)


def _poller(fd: int) -> Optional[Callable[[Optional[float]], bool]]:
    """``ready(timeout)``: True once ``fd`` has data (or its end/an error) to read.

    None without ``select.poll`` (the lent reading role then stays off).
    """
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):
        return None
    poller.register(fd, select.POLLIN)
    poll = poller.poll

    def ready(timeout: Optional[float]) -> bool:
        if timeout is None:
            return bool(poll())
        return bool(poll(0 if timeout <= 0 else max(1, int(timeout * 1000 + 0.999))))

    return ready


class _ReadBuffer:
    """read(n) over a "read some" primitive; what it read too much, readinto hands out."""

    _pending = b""
    _ready: Optional[Callable[[Optional[float]], bool]] = None

    def _read_some(self, numbytes: int) -> bytes:
        raise NotImplementedError

    def _read_fileno(self) -> int:
        raise NotImplementedError

    def poll_readable(self, timeout: Optional[float]) -> bool:
        """True once a read would not block; False after ``timeout`` seconds (None:
        no limit). Used by a thread that reads for itself (see ``_receiving``)."""
        if self._pending:
            return True
        if self._ready is None:
            self._ready = _poller(self._read_fileno())
            if self._ready is None:
                return True  # no poll(): the read blocks instead
        return self._ready(timeout)

    def read(self, numbytes: int) -> bytes:
        """Exactly ``numbytes`` bytes; EOFError if the stream ends first."""
        data = self._pending
        while len(data) < numbytes:
            data += self._read_some(max(numbytes - len(data), _READ_CHUNK))
        self._pending = data[numbytes:]
        return data[:numbytes]

    def _take_pending(self, buffer: memoryview) -> int:
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class FdIO(_ReadBuffer):
    """An IO over two file descriptors (pipes, a pty, a file...).

    >>> r1, w1 = os.pipe(); r2, w2 = os.pipe()
    >>> a, b = FdIO(r1, w2), FdIO(r2, w1)
    >>> a.write(b"ping"); b.read(4)
    b'ping'
    """

    _raises_pipes = True  # grow the pipes to pipe-max-size, within the process's budget

    def __init__(
        self, read_fd: int, write_fd: int, execmodel: Union[str, ExecModel] = "thread"
    ) -> None:
        self.execmodel = get_execmodel(execmodel)
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._read_closed = False
        self._write_closed = False
        if hasattr(os, "readv"):
            self._readinto: Callable[[memoryview], Optional[int]] = lambda buf: _readv(read_fd, buf)
        else:  # PyPy: FileIO.readinto reads into the buffer just as well
            self._readinto = io.FileIO(read_fd, "rb", closefd=False).readinto
        cooperative = self.execmodel.cooperative
        self._charged: Dict[int, int] = {}  # pipe bytes charged to the budget, per fd
        for fd in {read_fd, write_fd}:
            os.set_blocking(fd, not cooperative)
            self._charged[fd] = _raise_pipe_size(fd) if self._raises_pipes else 0

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} read_fd={self.read_fd} write_fd={self.write_fd}>"

    def _read_some(self, numbytes: int) -> bytes:
        if self._read_closed:
            raise EOFError(f"fd {self.read_fd} is closed for reading")
        while True:
            try:
                data = os.read(self.read_fd, numbytes)
            except BlockingIOError:
                self.execmodel._wait_readable(self.read_fd)
                continue
            except OSError as exc:
                raise EOFError(f"reading fd {self.read_fd} failed: {exc}") from exc
            if not data:
                raise EOFError(f"end of stream on fd {self.read_fd}")
            return data

    def _read_fileno(self) -> int:
        return self.read_fd

    def readinto(self, buffer: memoryview) -> int:
        """Read at least one byte into ``buffer``; EOFError at the end of the stream."""
        if self._pending:
            return self._take_pending(buffer)
        if self._read_closed:
            raise EOFError(f"fd {self.read_fd} is closed for reading")
        while True:
            n: Optional[int]
            try:
                n = self._readinto(buffer)
            except BlockingIOError:
                n = None
            except OSError as exc:
                raise EOFError(f"reading fd {self.read_fd} failed: {exc}") from exc
            if n is None:  # non-blocking and nothing there yet
                self.execmodel._wait_readable(self.read_fd)
                continue
            if n == 0:
                raise EOFError(f"end of stream on fd {self.read_fd}")
            return n

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Write all of ``data``; OSError once the stream is gone."""
        if self._write_closed:  # never write to a closed (maybe reused) fd number
            raise BrokenPipeError(f"fd {self.write_fd} is closed for writing")
        try:
            written = os.write(self.write_fd, data)
        except BlockingIOError:
            written = 0
        if written == len(data):
            return  # the usual case: one call
        view = memoryview(data)[written:]
        while view:
            try:
                n = os.write(self.write_fd, view)
            except BlockingIOError:
                self.execmodel._wait_writable(self.write_fd)
                continue
            view = view[n:]

    def writev(self, buffers: Sequence[Union[bytes, bytearray, memoryview]]) -> None:
        """Write all ``buffers`` in order, normally with one system call."""
        if self._write_closed:
            raise BrokenPipeError(f"fd {self.write_fd} is closed for writing")
        try:
            written = os.writev(self.write_fd, buffers) if _HAVE_WRITEV else 0
        except BlockingIOError:
            written = 0
        for buf in buffers:
            size = len(buf)
            if written >= size:
                written -= size
                continue
            self.write(memoryview(buf)[written:])
            written = 0

    def close_read(self) -> None:
        """Close the reading descriptor (idempotent); its share of the pipe budget is
        given back."""
        if not self._read_closed:
            self._read_closed = True
            _release_pipe_size(self._charged.pop(self.read_fd, 0))
            _close(self.read_fd)

    def close_write(self) -> None:
        """Close the writing descriptor (idempotent): the other side reads EOF."""
        if not self._write_closed:
            self._write_closed = True
            _release_pipe_size(self._charged.pop(self.write_fd, 0))
            _close(self.write_fd)

    def wait(self) -> Optional[int]:
        """No process behind plain file descriptors: None."""
        return None

    def kill(self) -> None:
        """No process to kill."""


def _close(fd: int) -> None:
    try:  # already closed: closing is idempotent
        os.close(fd)
    except OSError:
        pass


class StdioIO(FdIO):
    """The remote side's IO over its own stdin/stdout (see ``from_process``)."""

    # Its pipes were made, and sized within its budget, by the process that started this
    # one (popen); raising them here would charge the user again, outside any budget.
    _raises_pipes = False

    @classmethod
    def from_process(cls, execmodel: Union[str, ExecModel] = "thread") -> StdioIO:
        """Take fds 0/1 for the protocol and move the process's own stdio out of the way.

        The protocol continues on duplicates of fds 0 and 1; then fd 0 and ``sys.stdin``
        read from /dev/null (EOF at once) and fd 1 and ``sys.stdout`` write to /dev/null,
        so user code that prints cannot corrupt the stream. stderr is untouched. (Output
        forwarding, when the opener turns it on, points fds 1 and 2 at pipes of its own:
        see ``_output``.)
        """
        read_fd = os.dup(0)
        write_fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
        finally:
            os.close(devnull)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - replaces the process's stdin for good
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        _discarding[:] = [sys.stdout]
        return cls(read_fd, write_fd, execmodel)


_discarding: List[Any] = []


def discarding_stdout() -> Any:
    """The sys.stdout that ``StdioIO.from_process`` put in place (output forwarding
    replaces it while on), or None."""
    return _discarding[0] if _discarding else None


class SocketIO(_ReadBuffer):
    """An IO over a connected socket (create it with ``execmodel.socket`` for greenlets).

    >>> import socket
    >>> s1, s2 = socket.socketpair()
    >>> a, b = SocketIO(s1), SocketIO(s2)
    >>> a.write(b"ping"); b.read(4)
    b'ping'
    >>> s1.close(); s2.close()
    """

    def __init__(self, sock: socket.socket, execmodel: Union[str, ExecModel] = "thread") -> None:
        self.execmodel = get_execmodel(execmodel)
        self.sock = sock
        self._read_closed = False
        self._write_closed = False
        try:
            import socket as _socket

            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a unix socket pair): nothing to tune

    def __repr__(self) -> str:
        return f"<SocketIO {self.sock!r}>"

    def _read_some(self, numbytes: int) -> bytes:
        try:
            data: bytes = self.sock.recv(numbytes)
        except OSError as exc:
            raise EOFError(f"reading the socket failed: {exc}") from exc
        if not data:
            raise EOFError("the socket was closed by the other side")
        return data

    def _read_fileno(self) -> int:
        return self.sock.fileno()

    def readinto(self, buffer: memoryview) -> int:
        """Read at least one byte into ``buffer``; EOFError when the peer closed."""
        if self._pending:
            return self._take_pending(buffer)
        try:
            n = self.sock.recv_into(buffer)
        except OSError as exc:
            raise EOFError(f"reading the socket failed: {exc}") from exc
        if n == 0:
            raise EOFError("the socket was closed by the other side")
        return n

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Send all of ``data``; OSError once the connection is gone."""
        self.sock.sendall(data)

    def writev(self, buffers: Sequence[Union[bytes, bytearray, memoryview]]) -> None:
        """Send all ``buffers`` in order (``sendall`` each: no copy of a big one)."""
        for buf in buffers:
            self.sock.sendall(buf)

    def close_read(self) -> None:
        """Shut the reading direction (idempotent); the socket closes with both."""
        if not self._read_closed:
            self._read_closed = True
            self._shutdown(0)

    def close_write(self) -> None:
        """Shut the writing direction (idempotent): the peer reads EOF."""
        if not self._write_closed:
            self._write_closed = True
            self._shutdown(1)

    def _shutdown(self, how: int) -> None:
        try:  # the other side is gone already
            self.sock.shutdown(how)
        except OSError:
            pass
        if self._read_closed and self._write_closed:
            try:
                self.sock.close()
            except OSError:
                pass

    def wait(self) -> Optional[int]:
        """No process behind a socket: None."""
        return None

    def kill(self) -> None:
        """Nothing to kill; the connection ends when both directions are closed."""


def _is_buffered(io: Any) -> bool:
    return hasattr(io, "readinto") and hasattr(io, "writev")
