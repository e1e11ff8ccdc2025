"""FdIO, SocketIO and StdioIO as byte streams."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest

from execnet_channel import IO, BufferedIO, FdIO, SocketIO, _io

F_GETPIPE_SZ = 1032
SRC_DIRS = [
    str(Path(__file__).resolve().parents[2] / "packages" / name / "src")
    for name in ("execnet-serial", "execnet-channel")
]


def test_fdio_reads_exactly_and_raises_eof() -> None:
    r, w = os.pipe()
    reader, writer = FdIO(r, w), FdIO(r, w)
    assert isinstance(reader, IO)
    assert isinstance(reader, BufferedIO)
    writer.write(b"hello world")
    assert reader.read(5) == b"hello"
    buffer = bytearray(100)
    n = reader.readinto(memoryview(buffer))
    assert bytes(buffer[:n]) == b" world"
    writer.writev([b"ab", memoryview(b"cd"), bytearray(b"ef")])
    assert reader.read(6) == b"abcdef"
    writer.close_write()
    writer.close_write()  # idempotent
    with pytest.raises(EOFError):
        reader.read(1)
    reader.close_read()
    assert reader.wait() is None
    reader.kill()


def test_fdio_raises_the_pipe_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    # (a budget of its own: earlier tests' pipes may still hold some of the process's)
    monkeypatch.setattr(_io, "_pipe_budget", _io._PipeBudget(_io.PIPE_BUDGET))
    r, w = os.pipe()
    io = FdIO(r, w)
    with open("/proc/sys/fs/pipe-max-size") as f:
        maximum = int(f.read())
    size = fcntl.fcntl(w, F_GETPIPE_SZ)
    assert size == maximum or os.geteuid() != 0
    assert size >= 65536
    big = b"z" * (3 * 1024 * 1024)
    import threading

    thread = threading.Thread(target=io.writev, args=([b"h", big],))
    thread.start()
    assert io.read(len(big) + 1) == b"h" + big
    thread.join(30)
    io.close_read()
    io.close_write()


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a pipe past 1 MiB may be refused")
def test_raised_pipes_stay_within_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    with open("/proc/sys/fs/pipe-max-size") as f:
        maximum = int(f.read())
    monkeypatch.setattr(_io, "_pipe_budget", _io._PipeBudget(2 * maximum))
    pipes = [os.pipe() for _ in range(3)]
    ios = [FdIO(r, w) for r, w in pipes]  # each raises one pipe (both fds are its ends)
    sizes = [fcntl.fcntl(w, F_GETPIPE_SZ) for _, w in pipes]
    assert sizes[:2] == [maximum, maximum]
    assert sizes[2] < maximum  # over the budget: the default size
    ios[0].close_read()
    ios[0].close_write()  # gives its share back
    r, w = os.pipe()
    last = FdIO(r, w)
    assert fcntl.fcntl(w, F_GETPIPE_SZ) == maximum
    for io in [*ios[1:], last]:
        io.close_read()
        io.close_write()
    assert _io._pipe_budget.left == 2 * maximum


def _raise_together(count: int) -> List[FdIO]:
    """``count`` threads make an FdIO over a fresh pipe each, all at once."""
    import threading

    pipes = [os.pipe() for _ in range(count)]
    start = threading.Barrier(count)
    ios: List[FdIO] = []

    def make(read_fd: int, write_fd: int) -> None:
        start.wait(60)
        ios.append(FdIO(read_fd, write_fd))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        threads = [threading.Thread(target=make, args=pipe) for pipe in pipes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert len(ios) == count
    return ios


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a pipe past 1 MiB may be refused")
@pytest.mark.timeout(120)
def test_the_pipe_budget_holds_while_threads_raise_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    # makegateways bootstraps its gateways in threads, each raising its pipes at once:
    # the budget must not be spent twice (a check and a decrement apart let it, in
    # about two of five rounds here).
    with open("/proc/sys/fs/pipe-max-size") as f:
        maximum = int(f.read())
    budget = _io._PipeBudget(2 * maximum)
    monkeypatch.setattr(_io, "_pipe_budget", budget)
    for _ in range(5):
        ios = _raise_together(24)
        raised = [io for io in ios if fcntl.fcntl(io.write_fd, F_GETPIPE_SZ) >= maximum]
        assert len(raised) == 2
        assert budget.left == 0
        for io in ios:
            io.close_read()
            io.close_write()
        assert budget.left == 2 * maximum


def test_fdio_on_a_file_ignores_the_pipe_size() -> None:
    fd = os.open(os.devnull, os.O_RDWR)
    io = FdIO(fd, fd)
    io.write(b"x")
    with pytest.raises(EOFError):
        io.read(1)
    io.close_read()


def test_socketio() -> None:
    a, b = socket.socketpair()
    one, two = SocketIO(a), SocketIO(b)
    one.writev([b"12", b"345"])
    assert two.read(3) == b"123"
    buffer = bytearray(10)
    assert two.readinto(memoryview(buffer)) == 2
    one.close_write()
    with pytest.raises(EOFError):
        two.read(1)
    one.close_read()
    two.close_read()
    two.close_write()
    assert a.fileno() == -1
    assert b.fileno() == -1
    assert one.wait() is None


STDIO_CHILD = """
import os, sys
from execnet_channel import StdioIO
io = StdioIO.from_process("thread")
print("to sys.stdout")
os.write(1, b"to fd 1")
sys.stderr.write("to stderr")
sys.stderr.flush()
assert sys.stdin.read() == "" and os.read(0, 5) == b""
data = io.read(4)
io.write(data.upper())
"""


def test_stdioio_moves_stdio_out_of_the_protocols_way() -> None:
    result = subprocess.run(  # noqa: PLW1510 - the output is asserted
        [sys.executable, "-c", STDIO_CHILD],
        input=b"ping",
        capture_output=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(SRC_DIRS)),
    )
    assert result.stdout == b"PING", result.stderr
    assert result.stderr == b"to stderr"


def test_closed_fdio_never_touches_its_fd_numbers_again() -> None:
    r, w = os.pipe()
    io = FdIO(r, w)
    io.close_write()
    io.close_read()
    with pytest.raises(OSError):
        io.write(b"x")
    with pytest.raises(OSError):
        io.writev([b"x"])
    with pytest.raises(EOFError):
        io.read(1)
    with pytest.raises(EOFError):
        io.readinto(memoryview(bytearray(1)))


def test_a_child_leaves_the_pipes_its_parent_sized(
    monkeypatch: pytest.MonkeyPatch, make_child: Any
) -> None:
    with open("/proc/sys/fs/pipe-max-size") as f:
        maximum = int(f.read())
    monkeypatch.setattr(_io, "_pipe_budget", _io._PipeBudget(0))  # this process raises no pipe
    child = make_child()
    assert child.gw.remote_exec("channel.send(1)").receive(30) == 1  # its StdioIO is up
    for fd in (child.io.read_fd, child.io.write_fd):
        assert fcntl.fcntl(fd, F_GETPIPE_SZ) < maximum  # nor did the child (StdioIO)
