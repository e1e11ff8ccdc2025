"""Output forwarding: the remote's fds 1 and 2 and its log records, sent to the opener.

Imported only when forwarding is turned on (a gateway without it pays nothing).

Remote side (``Forwarder``, run by serve()): each of fds 1 and 2 becomes the write end
of a pipe, so ``print``, ``os.write(1, ...)``, C code and child processes (which inherit
the fds) all write there; a reader task per pipe sends what it reads as OUTPUT frames
(channel field: the fd). ``sys.stdout``/``sys.stderr`` are replaced by line-buffered
writers on those fds where they wrote to them (or, for stdout, to /dev/null), so a
printed line leaves at once. A logging handler sends LOG_RECORD frames.

Flow control is a window, not a buffer: the remote sends at most WINDOW bytes of
OUTPUT/LOG_RECORD payload ahead of the opener's OUTPUT_ACKs (the opener acks after it
delivered them, every ACK_EVERY bytes). When the window is used up the reader stops
reading, the pipe fills and the writers block, exactly as a slow terminal slows a
program. Channel frames are never queued behind output: at most a window of output is
in flight before them. Memory on both sides is bounded by the window and the pipes.

At the end (serve() ending, ``os._exit`` in remote code, the output turned off), the
original fds are put back and what is still in the pipes is sent, window or not,
before the protocol stream closes: output written just before the end arrives before
the opener's EOFError. Only a process killed by a signal loses what its pipes held.

Opener side (``OutputReceiver``, run by the gateway's receiver): splits each stream into
lines, gives each line to the callback (bytes, exact) or writes it to ``sys.stderr``
with a ``[<id>] `` / ``[<id>:err] `` prefix (text, undecodable bytes replaced), emits
log records on the logger ``execnet.remote.<id>``, and counts what to ack.
"""

from __future__ import annotations

import io
import os
import sys

from . import _frames
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NoReturn, Optional

    from ._execmodels import ExecModel

    OutputCallback = Callable[[str, bytes], object]

__all__ = ["ACK_EVERY", "WINDOW", "Forwarder", "OutputReceiver", "STREAM_NAMES"]

WINDOW = 1024 * 1024  # bytes of output in flight, at most (plus one read)
ACK_EVERY = WINDOW // 4  # the opener acks after using this many bytes
_READ = 64 * 1024  # bytes per read of a pipe (and per OUTPUT frame)
MAX_LINE = 64 * 1024  # a longer line goes to the destination in pieces of this size
STDERR_TAIL = 8192  # bytes of forwarded stderr kept for a post-mortem
FINISH_TIMEOUT = 2.0  # seconds the end waits for the pipes to be sent
STREAM_NAMES = {1: "stdout", 2: "stderr"}

# the real os._exit (serve() replaces os._exit while forwarding, see Forwarder._exit)
_real_exit = os._exit


# -- the remote side -----------------------------------------------------------------


class _CooperativeWriter(io.RawIOBase):
    """A raw writer to a blocking fd that waits the cooperative model's way first.

    Writes at most PIPE_BUF bytes once poll says the pipe is writable (POSIX: such a
    write then does not block), so a greenlet that prints into a full pipe lets the
    reader greenlet run instead of blocking the hub. The fd stays blocking: child
    processes share it.
    """

    def __init__(self, fd: int, model: ExecModel) -> None:
        self._fd = fd
        self._model = model

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        self._model._wait_writable(self._fd)
        return os.write(self._fd, bytes(data[:4096]))


def _text_writer(fd: int, model: ExecModel) -> io.TextIOWrapper:
    """What sys.stdout/sys.stderr are while forwarding: line-buffered UTF-8 on ``fd``."""
    if model.cooperative:
        binary: Any = io.BufferedWriter(_CooperativeWriter(fd, model), 8192)
    else:
        binary = open(fd, "wb", closefd=False)  # noqa: SIM115 (sys.stdout/err while on)
    return io.TextIOWrapper(
        binary, encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def _writes_to(stream: Any, fd: int) -> bool:
    try:
        return bool(stream.fileno() == fd)
    except Exception:
        return False


class _Pipe:
    """One forwarded fd: the pipe behind it and what to restore."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.read_fd, write_fd = os.pipe()
        self.saved = os.dup(fd)
        os.dup2(write_fd, fd)
        os.close(write_fd)
        os.set_blocking(self.read_fd, False)  # the read end is ours alone
        self.eof = False
        self.stopped = False
        self.lock: Any = None  # held from a read to the end of its send (see finish)

    def restore(self) -> None:
        if self.saved >= 0:
            os.dup2(self.saved, self.fd)
            os.close(self.saved)
            self.saved = -1

    def unread(self) -> int:
        try:
            import fcntl
            import termios

            data = fcntl.ioctl(self.read_fd, termios.FIONREAD, b"\0\0\0\0")
            return int.from_bytes(data, sys.byteorder)
        except Exception:
            return 0


class Forwarder:
    """The remote half: fds 1/2 and log records to the opener, within the window."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway
        model: ExecModel = gateway.execmodel
        self._model = model
        self._credit = WINDOW
        self._credit_lock = model.Lock()
        self._more: Any = model.Event()  # (set, clear, wait)
        self._finishing = False
        self._pipes: List[_Pipe] = []
        self._python_streams: Dict[str, Any] = {}
        self._handler: Any = None
        self._pid = os.getpid()

    # -- turning on and off --------------------------------------------------------

    def configure(self, output: bool, log_level: Optional[int]) -> None:
        if output and not self._pipes:
            self._start_output()
        elif not output and self._pipes:
            self.finish()
        if log_level is not None and self._handler is None:
            self._start_logging(log_level)
        elif log_level is None and self._handler is not None:
            self._stop_logging()

    def _start_output(self) -> None:
        self._finishing = False
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            try:
                stream.flush()
            except Exception:
                pass
        for fd in (1, 2):
            pipe = _Pipe(fd)
            pipe.lock = self._model.Lock()
            self._pipes.append(pipe)
            if self._model.cooperative:
                self._model.start(self._pump, (pipe,))
        if not self._model.cooperative:
            self._model.start(self._pump_all, (list(self._pipes),))
        from ._io import discarding_stdout

        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            if _writes_to(stream, fd) or (fd == 1 and stream is discarding_stdout()):
                writer = _text_writer(fd, self._model)
                self._python_streams[name] = (stream, writer)
                setattr(sys, name, writer)
        os._exit = self._exit

    def _exit(self, status: int) -> NoReturn:
        """os._exit while forwarding: what the pipes hold is sent first (this process
        only; a forked child exits at once)."""
        if os.getpid() == self._pid:
            self.finish()
        _real_exit(status)

    def finish(self, timeout: float = FINISH_TIMEOUT) -> None:
        """Put the fds back and send what the pipes still hold (ignoring the window)."""
        if not self._pipes or self._finishing:
            return
        self._finishing = True
        self._more.set()
        if os._exit == self._exit:
            os._exit = _real_exit
        for name, (original, writer) in self._python_streams.items():
            stream = getattr(sys, name)
            try:
                stream.flush()
            except Exception:
                pass
            if stream is writer:  # (one the user code put there stays)
                setattr(sys, name, original)
        self._python_streams.clear()
        for pipe in self._pipes:
            pipe.restore()
        import time

        # Every read and its send happen under the pipe's lock: once the lock is free
        # and the pipe empty, all that was written before the fds were put back is sent.
        deadline = time.monotonic() + timeout
        for pipe in self._pipes:
            while not pipe.eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not pipe.lock.acquire(True, remaining):
                    break
                try:
                    empty = pipe.eof or not pipe.unread()
                finally:
                    pipe.lock.release()
                if empty:
                    break
                self._model.sleep(0.001)
            pipe.stopped = True  # what child processes write later is dropped
        self._pipes = []

    # -- the readers ---------------------------------------------------------------

    def _pump_all(self, pipes: List[_Pipe]) -> None:
        """The thread models' reader: one OS thread polls both pipes."""
        import select

        poller = select.poll()
        by_fd = {}
        for pipe in pipes:
            poller.register(pipe.read_fd, select.POLLIN)
            by_fd[pipe.read_fd] = pipe
        while by_fd:
            self._wait_for_credit()
            for fd, _ in poller.poll():
                pipe = by_fd[fd]
                if not self._read_and_send(pipe):
                    poller.unregister(fd)
                    del by_fd[fd]
                    self._close_pipe(pipe)

    def _pump(self, pipe: _Pipe) -> None:
        """The cooperative models' reader: one greenlet per pipe."""
        try:
            while True:
                self._wait_for_credit()
                self._model._wait_readable(pipe.read_fd)
                if not self._read_and_send(pipe):
                    break
        finally:
            self._close_pipe(pipe)

    def _read_and_send(self, pipe: _Pipe) -> bool:
        """Send what the pipe holds (up to _READ bytes); False at its end."""
        with pipe.lock:
            try:
                data = os.read(pipe.read_fd, _READ)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            if not pipe.stopped:
                self._send(_frames.OUTPUT, pipe.fd, data)
        return True

    def _close_pipe(self, pipe: _Pipe) -> None:
        pipe.eof = True
        try:
            os.close(pipe.read_fd)
        except OSError:
            pass

    def _wait_for_credit(self) -> None:
        while self._credit <= 0 and not self._finishing:
            self._more.clear()
            if self._credit > 0 or self._finishing:
                return
            self._more.wait()

    def _send(self, kind: int, fd: int, payload: bytes) -> None:
        with self._credit_lock:
            self._credit -= len(payload)
        try:
            self._gateway._send(kind, fd, payload)
        except OSError:
            pass  # the connection is gone: nobody to tell

    def acked(self, count: int) -> None:
        """The opener used ``count`` more bytes: that much more may be sent."""
        with self._credit_lock:
            self._credit = min(WINDOW, self._credit + count)
        self._more.set()

    # -- logging -------------------------------------------------------------------

    def _start_logging(self, level: int) -> None:
        import logging

        forwarder = self

        class ForwardingHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    forwarder._send_record(record, self)
                except Exception:
                    self.handleError(record)

        handler = self._handler = ForwardingHandler(level)
        root = logging.getLogger()
        root.addHandler(handler)
        if level and (root.level == logging.NOTSET or root.level > level):
            root.setLevel(level)

    def _stop_logging(self) -> None:
        import logging

        logging.getLogger().removeHandler(self._handler)
        self._handler = None

    def _send_record(self, record: Any, handler: Any) -> None:
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            import logging

            exc_text = (handler.formatter or logging.Formatter()).formatException(record.exc_info)
        fields = {
            "name": str(record.name),
            "levelno": int(record.levelno),
            "levelname": str(record.levelname),
            "msg": record.getMessage(),
            "exc_text": exc_text,
            "stack_info": record.stack_info,
            "created": float(record.created),
            "threadName": str(record.threadName),
            "processName": str(record.processName),
            "process": record.process,
            "pathname": str(record.pathname),
            "lineno": int(record.lineno),
            "funcName": str(record.funcName),
        }
        payload = self._gateway._dumps(fields)
        if self._model.get_ident() != self._gateway._receiver_ident:
            self._wait_for_credit()  # (the receiver takes the acks: it never waits)
        self._send(_frames.LOG_RECORD, 0, payload)


# -- the opener's side ----------------------------------------------------------------


class OutputReceiver:
    """The opener half: lines to the callback or to sys.stderr, records to logging."""

    def __init__(self, gateway_id: str, callback: Optional[OutputCallback] = None) -> None:
        self.gateway_id = gateway_id
        self.callback = callback
        self._partial: Dict[int, bytes] = {1: b"", 2: b""}
        self.stderr_tail = bytearray()  # the last STDERR_TAIL bytes of fd 2 (post-mortems)
        self._unacked = 0
        self._logger: Any = None

    def output(self, fd: int, data: bytes) -> int:
        """Deliver what fd ``fd`` wrote; the byte count to ack now (0: not yet)."""
        if fd not in self._partial:
            raise ValueError(f"OUTPUT frame for fd {fd}: only 1 (stdout) and 2 (stderr) exist")
        if fd == 2:
            tail = self.stderr_tail
            tail += data
            if len(tail) > STDERR_TAIL:
                del tail[: len(tail) - STDERR_TAIL]
        buffered = self._partial[fd] + data
        end = buffered.rfind(b"\n") + 1
        lines = buffered[:end].splitlines(True)
        rest = buffered[end:]
        while len(rest) >= MAX_LINE:  # no newline for long: pieces, memory stays bounded
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial[fd] = rest
        self._deliver(fd, lines)
        return self._count(len(data))

    def record(self, fields: Any, size: int) -> int:
        """Emit a forwarded log record (``size``: its payload's bytes); the byte count
        to ack now (0: not yet)."""
        import logging
        from time import time

        if not isinstance(fields, dict) or type(fields.get("levelno")) is not int:
            raise ValueError(f"LOG_RECORD payload is not a log record: {type(fields).__name__}")
        if self._logger is None:
            self._logger = logging.getLogger(f"execnet.remote.{self.gateway_id}")
        logger = self._logger
        levelno = fields["levelno"]
        if logger.isEnabledFor(levelno):
            # The remote is not trusted to send the right types: each field is made the
            # type a formatter expects (a handler must not fail on a peer's record).
            texts = ("levelname", "msg", "threadName", "processName", "pathname", "funcName")
            attrs: Dict[str, Any] = {key: str(fields.get(key, "")) for key in texts}
            for key in ("exc_text", "stack_info"):
                value = fields.get(key)
                attrs[key] = None if value is None else str(value)
            created = fields.get("created")
            attrs["created"] = created = float(created) if type(created) is float else time()
            attrs["msecs"] = (created - int(created)) * 1000
            attrs["lineno"] = fields["lineno"] if type(fields.get("lineno")) is int else 0
            attrs["process"] = fields["process"] if type(fields.get("process")) is int else None
            attrs.update(name=logger.name, levelno=levelno, args=None, exc_info=None)
            attrs["remote_name"] = str(fields.get("name", ""))
            logger.handle(logging.makeLogRecord(attrs))
        return self._count(size)

    def flush(self) -> None:
        """Deliver the partial last lines (the remote has ended)."""
        for fd, rest in list(self._partial.items()):
            if rest:
                self._partial[fd] = b""
                self._deliver(fd, [rest])

    def _count(self, size: int) -> int:
        self._unacked += size
        if self._unacked < ACK_EVERY:
            return 0
        count, self._unacked = self._unacked, 0
        return count

    def _deliver(self, fd: int, lines: List[bytes]) -> None:
        if not lines:
            return
        callback = self.callback
        if callback is not None:
            name = STREAM_NAMES[fd]
            try:
                while lines:
                    callback(name, lines[0])
                    del lines[0]
                return
            except Exception:
                del lines[0]  # (the failing line was the callback's: not written twice)
                import traceback

                self.callback = None
                sys.stderr.write(
                    f"execnet gateway {self.gateway_id!r}: the output callback {callback!r} "
                    "failed; its output goes to sys.stderr from now on:\n" + traceback.format_exc()
                )
        prefix = f"[{self.gateway_id}] " if fd == 1 else f"[{self.gateway_id}:err] "
        text = "".join(
            prefix + line.decode("utf-8", "replace") + ("" if line.endswith(b"\n") else "\n")
            for line in lines
        )
        stderr = sys.stderr
        if stderr is not None:
            try:
                stderr.write(text)
                stderr.flush()
            except Exception:
                pass  # a closed or broken stderr: the output has nowhere to go
