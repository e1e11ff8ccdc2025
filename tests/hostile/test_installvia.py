"""socket//installvia=ID against a second client on the same host (issue 11, point 1).

The server installvia starts must take exactly one connection, which proves a fresh
secret handed over the existing channel, and close its listening socket once used or
when nobody came in time: no open exec port is left behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import parts
import pytest

from execnet_group import Group
from execnet_transport import socketserver

WAIT = 30.0


@pytest.fixture
def group() -> Iterator[Group]:
    group = Group()
    yield group
    group.terminate(10)


def _address(item: Any) -> Tuple[str, int]:
    """(host, port) of what the installed server reports first."""
    return str(item[-2]), int(item[-1])


def _until_closed(channel: Any) -> List[Any]:
    """Every item the channel still brings, until its remote code ended."""
    items: List[Any] = []
    try:
        while True:
            items.append(channel.receive(WAIT))
    except EOFError:
        return items


def test_the_port_is_closed_once_used(group: Group) -> None:
    group.makegateway("popen//id=hop")
    gw = group.makegateway("socket//installvia=hop")
    host, port = gw.remoteaddress.rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=WAIT)
    assert gw.remote_exec("channel.send('still mine')").receive(WAIT) == "still mine"


def test_a_connection_without_the_fresh_secret_runs_nothing(group: Group, tmp_path: Path) -> None:
    """Another program on the host reaches the port first: it is refused, and the
    listening socket is gone for everyone after it."""
    hop = group.makegateway("popen//id=hop")
    channel = hop.remote_exec(socketserver)
    channel.send((os.urandom(32), WAIT))
    host, port = _address(channel.receive(WAIT))
    marker = tmp_path / "ran"
    with socket.create_connection((host, port), timeout=WAIT) as intruder:
        intruder.sendall(repr(f"open({str(marker)!r}, 'w').close()").encode() + b"\n")
        intruder.settimeout(WAIT)
        try:
            while intruder.recv(65536):
                pass
        except ConnectionResetError:
            pass
    said = " ".join(str(item) for item in _until_closed(channel))
    assert "refused" in said
    assert not marker.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=WAIT)


def test_the_port_closes_when_nobody_came_in_time(group: Group) -> None:
    hop = group.makegateway("popen//id=hop")
    channel = hop.remote_exec(socketserver)
    channel.send((os.urandom(32), 0.5))
    host, port = _address(channel.receive(WAIT))
    said = " ".join(str(item) for item in _until_closed(channel))
    assert "nobody connected within 0.5 s" in said
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=WAIT)


def test_each_installed_server_has_its_own_secret(group: Group) -> None:
    """The secret of one installed server does not open another one."""
    hop = group.makegateway("popen//id=hop")
    first, second = hop.remote_exec(socketserver), hop.remote_exec(socketserver)
    first.send((os.urandom(32), WAIT))
    second.send((os.urandom(32), WAIT))
    _address(first.receive(WAIT))
    host, port = _address(second.receive(WAIT))
    stolen = b"x" * 32  # anything but the second server's own secret
    with socket.create_connection((host, port), timeout=WAIT) as sock:
        sock.settimeout(WAIT)
        line = b""
        while not line.endswith(b"\n"):
            line += sock.recv(1)
        _, nonce = socketserver.parse_greeting(line)
        client_nonce = os.urandom(32)
        key = socketserver.session_key(stolen, nonce, client_nonce)
        sock.sendall(socketserver.client_hello(key, client_nonce, b"channel = None\n"))
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""
    said = " ".join(str(item) for item in _until_closed(second))
    assert "failed the shared-secret proof" in said


def test_installvia_through_pypy_starts_isolated_children(group: Group) -> None:
    group.makegateway(f"popen//python={parts.pypy3()}//id=hop")
    gw = group.makegateway("socket//installvia=hop")
    ch = gw.remote_exec(
        "import sys; channel.send((sys.implementation.name, sys.flags.isolated, '' in sys.path))"
    )
    assert ch.receive(WAIT) == ("pypy", 1, False)


def test_installvia_from_another_cpython(group: Group) -> None:
    other = parts.other_interpreter()
    group.makegateway(f"popen//python={other}//id=hop")
    gw = group.makegateway("socket//installvia=hop")
    ch = gw.remote_exec("import sys; channel.send((sys.executable, sys.flags.isolated))")
    executable, isolated = ch.receive(WAIT)
    assert os.path.realpath(executable) == os.path.realpath(other)
    assert isolated == 1
    assert executable != sys.executable
