"""via=: a child started on another gateway's host, its stdio proxied over a channel.

The proxy travels as the remote_exec source VIA_PROXY (standard library only); it first
receives the child's command line. Items on the channel: bytes are the child's stdout;
("stderr", bytes) its stderr; ("exit", status) its end; ("error", text) a failure to
start it. Towards the proxy: bytes go to the child's stdin, None closes it, "kill" kills
the child. The child's output travels in pieces of at most PIECE bytes; what goes to
the child in pieces that fit the via gateway's own frame limit (a frame for the child
may be bigger: its gateway's max_frame is its own), usually one item per frame.

A ViaIO offers ``readinto`` and ``writev`` (the channel layer's BufferedIO): the via
gateway's receiver reads it as it reads pipes and sockets, in one loop that judges every
header the same way (unknown kind, maximum frame size), decoding every frame of what
arrived in place. Memory follows what the proxy sent: one item is buffered here at a time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Optional, Sequence, Union

from execnet_channel import Channel, ExecModel

from ._process import STDERR_TAIL_BYTES, STDERR_TAIL_LINES, describe_status

__all__ = ["PIECE", "VIA_PROXY", "ViaIO"]

# Bytes of the child's output per item: below the smallest max_frame (1 MiB) with room
# for the item's own header (reads from its stdout pipe are smaller still).
PIECE = 512 * 1024
# What a bytes item adds to its payload (opcode, length, end), with room to spare.
_ITEM_OVERHEAD = 64


# Runs on the via gateway's host (remote_exec source: standard library only). It first
# receives (args, python_at) and starts the child: python_at, if not None, is the
# position in args of the opener's own interpreter, which here becomes this one's.
VIA_PROXY = """
import os, subprocess, sys, threading
# stderr: a pipe's worth at a time; stdout, the protocol: PIECE bytes per item (below
# the smallest max_frame), so a big frame crosses in few items
STDERR_CHUNK = 65536
PIECE = PIECE_BYTES
args, python_at = channel.receive()
args = list(args)
if python_at is not None:
    args[python_at] = sys.executable
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
            data = os.read(fd, PIECE)
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
""".replace("PIECE_BYTES", str(PIECE))


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
        self._reading = True  # the gateway reads: nobody else may take items
        # bytes per item towards the child: what the via gateway's frames can carry
        self._piece = channel.gateway.max_frame - _ITEM_OVERHEAD
        self._draining = threading.Lock()
        self._via_id = channel.gateway.id
        self._hop_lost = False  # the via gateway's own connection ended, not the child

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
                # A hop of a chain: its own post-mortem names the hops above it.
                self._error = f"its via gateway {self._via_id!r} was lost ({exc})"
                self._hop_lost = True
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

    def readinto(self, buffer: memoryview) -> int:
        """What the proxy sent so far, up to ``len(buffer)`` bytes (at least one: waits
        for the next item); EOFError at the end. The gateway's receive loop reads so:
        the same loop, and the same judgement of frames, as over pipes and sockets."""
        while not self._buffer:
            self._take(None)
        size = min(len(buffer), len(self._buffer))
        if size == len(self._buffer):
            buffer[:size] = self._buffer
        else:
            view = memoryview(self._buffer)
            try:
                buffer[:size] = view[:size]
            finally:
                view.release()
        del self._buffer[:size]
        return size

    def writev(self, buffers: Sequence[Union[bytes, bytearray, memoryview]]) -> None:
        """Write ``buffers`` as one piece of the stream (they are one frame)."""
        self.write(b"".join(buffers))

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if self._ended.is_set():
            raise OSError(f"cannot write: {self.describe_end()}")
        try:
            piece = self._piece
            if len(data) <= piece:
                self._channel.send(bytes(data))
            else:
                view = memoryview(data)
                for start in range(0, len(view), piece):
                    self._channel.send(bytes(view[start : start + piece]))
        except (ValueError, EOFError) as exc:
            raise OSError(f"cannot write through the via proxy: {exc}") from exc

    def close_read(self) -> None:
        """The gateway reads no more (its receiver ended): ``wait()`` may now take the
        proxy's last items itself, down to the child's exit status."""
        self._reading = False

    def close_write(self) -> None:
        with contextlib.suppress(OSError, ValueError, EOFError):
            self._channel.send(None)

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """The child's exit status once the proxy reported it; None after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if not self._reading and self._draining.acquire(False):
                try:
                    self._drain(deadline)
                finally:
                    self._draining.release()
            else:  # the gateway reads (and sees the end), or another wait() drains
                self._ended.wait(0.05 if remaining is None else min(0.05, remaining))
        return self.status

    def _drain(self, deadline: Optional[float]) -> None:
        """Nobody reads the channel any more (the gateway closed the connection, e.g. at
        a corrupt stream): drop the child's last output, keep its exit status."""
        while not self._ended.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                self._take(remaining)
            except (EOFError, self._channel.TimeoutError):
                return
            del self._buffer[:]

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError, EOFError):
            self._channel.send("kill")

    def stderr_tail(self, wait: float = 0.0) -> str:
        text = bytes(self._tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])

    def postmortem(self, wait: float = 1.0) -> str:
        self._ended.wait(wait)
        text = self.describe_end()
        if not self._hop_lost:
            text += f" (on the host of via gateway {self._via_id!r})"
        tail = self.stderr_tail()
        if tail.strip():
            text += "; last lines of its stderr:\n" + tail
        return text
