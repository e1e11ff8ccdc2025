"""A local child process whose stdin/stdout carry the protocol and whose stderr is teed.

The child's stderr stays visible on ours, and the last few KiB are kept so that a
gateway whose process died can say how (exit status or signal, last stderr lines).
"""

from __future__ import annotations

import _thread
import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from execnet_channel import ExecModel, FdIO, trace

__all__ = ["ChildProcess", "PipedChild", "ProcessIO", "describe_status"]

# What a post-mortem shows of a dead child's stderr: the last lines of the last bytes
# (enough for a traceback's end, short enough for an error message).
STDERR_TAIL_BYTES = 8192
STDERR_TAIL_LINES = 15


def _start_os_thread(func: Callable[..., None], args: Tuple[Any, ...]) -> None:
    """Start an OS thread, even where gevent or eventlet monkey-patched _thread."""
    start = _thread.start_new_thread
    try:
        if "gevent.monkey" in sys.modules:
            from gevent import monkey

            start = monkey.get_original("_thread", "start_new_thread")
        elif "eventlet.patcher" in sys.modules:
            from eventlet import patcher

            start = patcher.original("_thread").start_new_thread
    except (ImportError, AttributeError):
        pass  # not patched after all: the plain one is an OS thread
    start(func, args)


F_SETPIPE_SZ = 1031  # Linux; not in the fcntl module before 3.10
F_GETPIPE_SZ = 1032
DEFAULT_PIPE_SIZE = 65536  # what a Linux pipe holds unless grown


def _fit_pipe(fd: int, size: int) -> None:
    """Grow the pipe behind fd to hold `size` bytes, if the system lets us (else the
    writer waits for the reader, as with any pipe).

    The code sent to a child of this interpreter (``_own_code``, ~400 KB) then goes in
    one write, which the child reads at once: part of what sending that code saves
    (benchmarks/README.md, "Start-up tricks we keep").
    """
    if size <= DEFAULT_PIPE_SIZE or not sys.platform.startswith("linux"):
        return
    try:
        import fcntl

        if fcntl.fcntl(fd, F_GETPIPE_SZ) < size:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << (size - 1).bit_length())
    except OSError as exc:  # over /proc/sys/fs/pipe-max-size or the user's pipe budget
        trace(f"could not grow the pipe to a child to {size} bytes: {exc}")


def _wait_for(fd: int, events: int, deadline: float) -> bool:
    """Wait until fd is ready for `events` (POLLIN, POLLOUT) or has ended (hang-up,
    error: the read or write then says which); False at `deadline` (time.monotonic()).

    poll(), not select(): select() fails for descriptors numbered 1024 and above.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(math.ceil(remaining * 1000)))


def describe_status(returncode: Optional[int]) -> str:
    """'exit status 3', 'killed by signal SIGKILL', or 'still running'."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exit status {returncode}"


class PipedChild:
    """What every local child shares: our ends of its protocol pipes (`stdin_fd`,
    `stdout_fd`) and its stderr, copied to ours with the last few KiB kept."""

    def __init__(self, stdin_fd: int, stdout_fd: int, stderr_read: int) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self._tail = bytearray()
        self._tail_lock = threading.Lock()
        self._stderr_done = threading.Event()
        # A real thread even under greenlet models: it only copies bytes and must not
        # depend on the hub being scheduled. Started without threading.Thread, whose
        # start() waits until the new thread runs (milliseconds while the child starts).
        _start_os_thread(self._tee_stderr, (stderr_read,))

    def _tee_stderr(self, fd: int) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, DEFAULT_PIPE_SIZE)  # what the pipe holds at most
                except OSError:
                    break
                if not data:
                    break
                with contextlib.suppress(OSError):
                    os.write(2, data)
                with self._tail_lock:
                    self._tail += data
                    if len(self._tail) > STDERR_TAIL_BYTES:
                        del self._tail[: len(self._tail) - STDERR_TAIL_BYTES]
        finally:
            os.close(fd)
            self._stderr_done.set()

    def stderr_tail(self, wait: float = 0.0) -> str:
        """The last lines the child wrote to stderr (waiting up to `wait` s for its end)."""
        if wait:
            self._stderr_done.wait(wait)
        with self._tail_lock:
            text = bytes(self._tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])

    def read_some(self, numbytes: int, deadline: float) -> bytes:
        """Up to numbytes from the child's stdout; b'' at EOF; TimeoutError at the deadline."""
        if not _wait_for(self.stdout_fd, select.POLLIN, deadline):
            raise TimeoutError("no answer from the child")
        return os.read(self.stdout_fd, numbytes)

    def write_all(self, data: bytes, deadline: float) -> None:
        """All of data to the child's stdin; TimeoutError if it has not read it by then.

        The pipe is made big enough for the bootstrap frame first, where Linux allows,
        so the frame is usually written at once and the child reads it in one call.
        """
        _fit_pipe(self.stdin_fd, len(data))
        view = memoryview(data)
        os.set_blocking(self.stdin_fd, False)  # the gateway's IO sets its own mode later
        try:
            while view:
                try:
                    view = view[os.write(self.stdin_fd, view) :]
                    continue
                except BlockingIOError:
                    pass
                if not _wait_for(self.stdin_fd, select.POLLOUT, deadline):
                    raise TimeoutError("the child does not read its input")
        finally:
            os.set_blocking(self.stdin_fd, True)

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL the child; never blocks."""
        raise NotImplementedError

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        """The exit status, or None when still running after `timeout` seconds."""
        raise NotImplementedError

    def postmortem(self, wait: float = 1.0) -> str:
        """How the child ended: status or signal, and its last stderr lines."""
        status = self.wait(wait)
        text = f"{describe_status(status)} (pid {self.pid})"
        tail = self.stderr_tail(wait)
        if tail.strip():
            text += "; last lines of its stderr:\n" + tail
        return text

    def close_fds(self) -> None:
        for fd in (self.stdin_fd, self.stdout_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class ChildProcess(PipedChild):
    """A started child: `stdin_fd`/`stdout_fd` are our ends of its protocol pipes.

    `pass_fds`: more descriptors the child inherits (under the same numbers).
    """

    def __init__(
        self,
        args: List[str],
        env: Optional[Dict[str, str]] = None,
        pass_fds: Tuple[int, ...] = (),
    ) -> None:
        self.args = args
        child_stdin, stdin_fd = os.pipe()
        stdout_fd, child_stdout = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            self.popen: subprocess.Popen[bytes] = subprocess.Popen(
                args,
                stdin=child_stdin,
                stdout=child_stdout,
                stderr=stderr_write,
                env=env,
                pass_fds=pass_fds,
            )
        except BaseException:
            for fd in (stdin_fd, stdout_fd, stderr_read):
                os.close(fd)
            raise
        finally:
            for fd in (child_stdin, child_stdout, stderr_write):
                os.close(fd)
        super().__init__(stdin_fd, stdout_fd, stderr_read)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        """The exit status, or None when still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL the child; never blocks."""
        if self.popen.returncode is None:
            with contextlib.suppress(OSError):
                self.popen.kill()

    def __repr__(self) -> str:
        return f"<ChildProcess pid={self.pid} {describe_status(self.popen.returncode)}>"


class ProcessIO(FdIO):
    """FdIO over a local child's pipes; wait/kill reach the child."""

    def __init__(self, child: PipedChild, execmodel: ExecModel) -> None:
        super().__init__(child.stdout_fd, child.stdin_fd, execmodel)
        self.child = child

    def wait(self) -> Optional[int]:
        return self.child.wait(None)

    def kill(self) -> None:
        self.child.kill()
