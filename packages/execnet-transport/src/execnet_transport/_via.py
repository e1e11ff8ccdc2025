"""via=: a child started on another gateway's host, its stdio proxied over a channel.

The proxy travels as the remote_exec source VIA_PROXY (standard library only); it first
receives the child's command line. Items on the channel: bytes are the child's stdout;
("stderr", bytes) its stderr; ("exit", status) its end; ("error", text) a failure to
start it. Towards the proxy: bytes go to the child's stdin, None closes it, "kill" kills
the child.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Optional

from execnet_channel import Channel, ExecModel

from ._process import STDERR_TAIL_BYTES, STDERR_TAIL_LINES, describe_status

__all__ = ["VIA_PROXY", "ViaIO"]


# Runs on the via gateway's host (remote_exec source: standard library only). It first
# receives (args, default_python) and starts the child.
VIA_PROXY = """
import os, subprocess, sys, threading
# stderr: a pipe's worth at a time; stdout, the protocol: up to 1 MiB per item, so a big
# frame crosses in few items
STDERR_CHUNK, STDOUT_CHUNK = 65536, 1 << 20
args, default_python = channel.receive()
if default_python:
    args = [sys.executable] + list(args)
try:
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
except OSError as exc:
    channel.send(("error", "cannot start %r: %s" % (args[0], exc)))
else:
    def pump_stderr():
        fd = proc.stderr.fileno()
        while True:
            data = os.read(fd, STDERR_CHUNK)
            if not data:
                return
            channel.send(("stderr", data))
    def pump_stdout():
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, STDOUT_CHUNK)
            if not data:
                break
            channel.send(data)
        errors.join()
        channel.send(("exit", proc.wait()))
    errors = threading.Thread(target=pump_stderr)
    errors.daemon = True
    errors.start()
    out = threading.Thread(target=pump_stdout)
    out.daemon = True
    out.start()
    stdin_fd = proc.stdin.fileno()
    while True:
        try:
            item = channel.receive()
        except EOFError:
            break
        if item is None:
            proc.stdin.close()
        elif item == "kill":
            proc.kill()
        elif not proc.stdin.closed:
            view = memoryview(item)
            try:
                while view:
                    view = view[os.write(stdin_fd, view):]
            except OSError:
                pass  # the child is gone; its exit reaches the other side
    if proc.poll() is None:
        proc.kill()
"""


class ViaIO:
    """The IO of a gateway whose child runs on another gateway's host."""

    def __init__(self, channel: Channel, execmodel: ExecModel) -> None:
        self.execmodel = execmodel
        self._channel = channel
        self._buffer = bytearray()
        self.status: Optional[int] = None  # the proxied child's exit status, once it ended
        self._error = ""
        self._ended = threading.Event()
        self._tail = bytearray()

    pid = None

    def _take(self, timeout: Optional[float]) -> None:
        if self._ended.is_set():
            raise EOFError(self.describe_end())
        try:
            item = self._channel.receive(timeout)
        except self._channel.TimeoutError:
            raise
        except EOFError as exc:
            if self.status is None and not self._error:
                self._error = f"the connection through the via gateway ended ({exc})"
            self._ended.set()
            raise EOFError(self.describe_end()) from None
        if isinstance(item, bytes):
            self._buffer += item
        elif isinstance(item, tuple) and item and item[0] == "stderr":
            data = item[1]
            with contextlib.suppress(OSError):
                os.write(2, data)
            self._tail += data
            del self._tail[:-STDERR_TAIL_BYTES]
        elif isinstance(item, tuple) and item and item[0] == "exit":
            self.status = int(item[1])
            self._ended.set()
            self._close_channel()
            raise EOFError(self.describe_end())
        elif isinstance(item, tuple) and item and item[0] == "error":
            self._error = str(item[1])
            self._ended.set()
            self._close_channel()
            raise EOFError(self.describe_end())

    def _close_channel(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._channel.close()

    def describe_end(self) -> str:
        """How the proxied child ended (or why it never started), in words."""
        return self._error or f"the proxied child ended: {describe_status(self.status)}"

    def read_some(self, numbytes: int, deadline: float) -> bytes:
        """Up to numbytes; b'' at the end; TimeoutError at the deadline (bootstrap only)."""
        while not self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from the proxied child")
            try:
                self._take(remaining)
            except self._channel.TimeoutError:
                raise TimeoutError("no answer from the proxied child") from None
            except EOFError:
                return b""
        data = bytes(self._buffer[:numbytes])
        del self._buffer[:numbytes]
        return data

    def read(self, numbytes: int) -> bytes:
        while len(self._buffer) < numbytes:
            self._take(None)
        data = bytes(self._buffer[:numbytes])
        del self._buffer[:numbytes]
        return data

    def write(self, data: bytes) -> None:
        if self._ended.is_set():
            raise OSError(f"cannot write: {self.describe_end()}")
        try:
            self._channel.send(bytes(data))
        except (ValueError, EOFError) as exc:
            raise OSError(f"cannot write through the via proxy: {exc}") from exc

    def close_read(self) -> None:
        pass

    def close_write(self) -> None:
        with contextlib.suppress(OSError, ValueError, EOFError):
            self._channel.send(None)

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        self._ended.wait(timeout)
        return self.status

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError, EOFError):
            self._channel.send("kill")

    def stderr_tail(self, wait: float = 0.0) -> str:
        text = bytes(self._tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])

    def postmortem(self, wait: float = 1.0) -> str:
        self._ended.wait(wait)
        text = self.describe_end() + " (on the via gateway's host)"
        tail = self.stderr_tail()
        if tail.strip():
            text += "; last lines of its stderr:\n" + tail
        return text
