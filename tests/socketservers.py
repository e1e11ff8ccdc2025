"""Real socket server processes for tests, and the throwaway PKI their TLS needs.

    def test_x(servers, pki):
        server = servers("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
        ...  # connect to server.address
        server.wait_for_log("authenticated by")
        server.children()          # pids of the server's child processes (from /proc)
        server.stop()              # SIGINT; returns everything it logged

The server's stderr is read as it comes (a thread), so a test waits for a log line
instead of sleeping; `stop()` returns the whole log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence

import parts
import pytest

sys.path.insert(0, str(parts.ROOT))
try:
    from tools.certs import PKI, make_pki
finally:
    sys.path.remove(str(parts.ROOT))

__all__ = [
    "PKI",
    "Server",
    "assert_echoes",
    "pki",
    "process_state",
    "servers",
    "start_server",
    "tls_server",
]

MODULE = ("-m", "execnet_transport.socketserver")


class Server:
    """A socket server process, its address and its log."""

    def __init__(self, process: subprocess.Popen[str], address: str) -> None:
        self.process = process
        self.pid = process.pid
        self.address = address
        host, _, port = address.rpartition(":")
        self.host, self.port = host, int(port)
        self._lines: List[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def log(self) -> str:
        """What the server (and its children) logged so far."""
        with self._changed:
            return "".join(self._lines)

    def wait_for_log(self, text: str, timeout: float = 30.0, count: int = 1) -> str:
        """Wait until `text` appears in `count` lines of the log; the log then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(text in line for line in self._lines) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log()}")
                self._changed.wait(left)
            return "".join(self._lines)

    def children(self) -> List[int]:
        """Pids of the server's child processes (zombies included)."""
        return [pid for pid, (ppid, _) in _processes().items() if ppid == self.pid]

    def stop(self) -> str:
        """Interrupt the server (if it still runs); everything it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return self.log()

    def close(self) -> None:
        self.stop()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, state letter)} of every process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry)] = (int(fields[1]), fields[0])
    return found


def process_state(pid: int) -> Optional[str]:
    """The state letter of `pid` ('Z' for a zombie), or None once it is reaped."""
    entry = _processes().get(pid)
    return entry[1] if entry else None


def start_server(
    *args: str,
    command: Sequence[str] = (sys.executable, *MODULE),
    address: str = "127.0.0.1:0",
    cwd: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
) -> Server:
    """Start `command address *args`; return once it printed 'listening on HOST:PORT'."""
    process = subprocess.Popen(
        [*command, address, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until bound (or the server died)
    if not line.startswith("listening on "):
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"socket server did not start: {line!r} {err}")
    return Server(process, line.split()[-1])


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    """servers(*args, **start_server options) -> a running Server, stopped after the test."""
    started: List[Server] = []

    def start(*args: str, **options: object) -> Server:
        server = start_server(*args, **options)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A throwaway CA with server and client certificates (and a second, unrelated CA)."""
    parts.openssl()
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_server(servers: Callable[..., Server], pki: PKI, *more: str, **options: object) -> Server:
    """servers(...) serving TLS with the throwaway server certificate, plus `more`."""
    keys = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    return servers(*keys, *more, **options)


def assert_echoes(gw: Any, size: int) -> None:
    """`size` random bytes go to the gateway's remote and come back unchanged."""
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    data = os.urandom(size)
    echo.send(data)
    assert echo.receive(60) == data
    echo.close()
    echo.waitclose(30)
