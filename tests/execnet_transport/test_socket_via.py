"""socket=HOST:PORT//via=ID: the via gateway's host connects, we run the handshake through.

Against real socket server processes (tests/socketservers.py): plain, with a secret,
with TLS (verified end to end: a CA the server's certificate does not verify against
fails through the relay too; a spy on the hop's sockets sees ciphertext only), through
one popen hop and through a chain of two, on hops of every execution model and on
CPython 3.8 and PyPy3. The relay on the hop ends (no thread, no socket) when the
gateway ends or is cut.
The attacks through the relay (garbage, a huge declared frame) are in tests/hostile.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
from socketservers import PKI, Server, assert_echoes, tls_server

from execnet_channel import RemoteError
from execnet_transport import BootstrapError, Gateway, HostNotFound

MakeGateway = Callable[..., Gateway]
TIMEOUT = 30.0

# What the hop holds of a relay: its thread's name, and its open sockets' peers.
HOP_STATE = """
import gc, socket, threading
threads = [t.name for t in threading.enumerate() if t.name == "execnet socket relay"]
peers = []
for obj in gc.get_objects():
    if isinstance(obj, socket.socket) and obj.fileno() >= 0:
        try:
            peers.append("%s:%s" % obj.getpeername()[:2])
        except OSError:
            pass
channel.send((threads, peers))
"""


def hop_state(hop: Gateway) -> Tuple[List[str], List[str]]:
    threads, peers = hop.remote_exec(HOP_STATE).receive(TIMEOUT)
    return list(threads), list(peers)


def relay_gone(hop: Gateway, address: str) -> bool:
    """Wait until the hop has no relay thread and no socket to `address` (True), or
    TIMEOUT passed (False). A main_thread_only hop refuses the question while the relay
    still occupies its one task."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            threads, peers = hop_state(hop)
        except RemoteError as exc:
            if "running a second remote_exec concurrently" not in str(exc):
                raise
        else:
            if not threads and address not in peers:
                return True
        time.sleep(0.05)
    return False


def test_the_hop_makes_the_connection(servers: Callable[..., Server], makegw: MakeGateway) -> None:
    server = servers()
    hop = makegw("popen//max_frame=1M")  # the relay's pieces fit the hop's own frames
    gw = makegw(f"socket={server.address}//via={hop.id}", via=hop)
    assert gw.via_gateway is hop
    assert gw.remoteaddress == server.address
    assert gw._rinfo().pid not in (os.getpid(), hop._rinfo().pid, server.pid)
    threads, peers = hop_state(hop)
    assert threads == ["execnet socket relay"] * 2  # its reader and its writer
    assert server.address in peers  # the hop holds the TCP connection
    assert_echoes(gw, 3 << 20)  # bigger than one piece: split and joined both ways
    pumps = [t for t in threading.enumerate() if t.name.startswith(f"execnet relay {gw.id} ")]
    assert len(pumps) == 2  # here: one thread each way
    gw.exit()
    gw.join(TIMEOUT)  # the receiver's end stopped the relay: its pumps are joined
    assert not any(pump.is_alive() for pump in pumps)
    assert relay_gone(hop, server.address)
    assert hop.remote_exec("channel.send(1)").receive(TIMEOUT) == 1


def test_a_secret_through_the_hop(
    servers: Callable[..., Server], makegw: MakeGateway, secret_file: Path
) -> None:
    server = servers("--secret-file", str(secret_file))
    hop = makegw("popen")
    gw = makegw(f"socket={server.address}//secret_file={secret_file}//via={hop.id}", via=hop)
    assert gw.remote_exec("channel.send(6 * 7)").receive(TIMEOUT) == 42
    assert "authenticated by the shared secret" in server.wait_for_log("served by pid")


def test_mutual_tls_and_a_secret_through_the_hop(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI, secret_file: Path
) -> None:
    server = tls_server(
        servers, pki, "--tls-client-ca", str(pki.ca), "--secret-file", str(secret_file)
    )
    hop = makegw("popen")
    keys = f"tls_ca={pki.ca}//tls_cert={pki.client_cert}//tls_key={pki.client_key}"
    gw = makegw(
        f"socket={server.address}//{keys}//secret_file={secret_file}//via={hop.id}", via=hop
    )
    assert type(gw._io).__name__ == "TLSSocketIO"
    version = gw.remote_exec("channel.send(channel.gateway._io.sock.version())").receive(TIMEOUT)
    assert version in ("TLSv1.2", "TLSv1.3")
    assert_echoes(gw, 3 << 20)
    log = server.wait_for_log("served by pid")
    assert "TLS client certificate 'client'" in log


def test_tls_is_verified_end_to_end(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    # The hop relays bytes only: the server's certificate must verify here, for the name.
    server = tls_server(servers, pki)
    hop = makegw("popen")
    with pytest.raises(BootstrapError, match=r"does not verify for '127\.0\.0\.1'"):
        makegw(f"socket={server.address}//tls_ca={pki.other_ca}//via={hop.id}", via=hop)
    assert relay_gone(hop, server.address)


def test_a_chain_of_two_hops(servers: Callable[..., Server], makegw: MakeGateway, pki: PKI) -> None:
    server = tls_server(servers, pki)
    first = makegw("popen")
    second = makegw(f"popen//via={first.id}", via=first)
    gw = makegw(f"socket={server.address}//tls_ca={pki.ca}//via={second.id}", via=second)
    assert gw.via_gateway is second
    assert_echoes(gw, 3 << 20)
    assert server.address in hop_state(second)[1]
    assert server.address not in hop_state(first)[1]
    gw.exit()
    gw.join(TIMEOUT)
    assert relay_gone(second, server.address)


def test_the_relay_ends_when_the_gateway_is_cut(
    servers: Callable[..., Server], makegw: MakeGateway
) -> None:
    server = servers()
    hop = makegw("popen")
    gw = makegw(f"socket={server.address}//via={hop.id}", via=hop)
    assert gw.remote_exec("channel.send(1)").receive(TIMEOUT) == 1
    gw.cut_connection()  # what a group's terminate does to a gateway that does not exit
    gw.join(TIMEOUT)
    assert not gw.hasreceiver()
    assert relay_gone(hop, server.address)
    with pytest.raises(OSError):
        gw.remote_exec("channel.send(1)")


def test_the_server_dying_ends_the_gateway_and_the_relay(
    servers: Callable[..., Server], makegw: MakeGateway
) -> None:
    server = servers()
    hop = makegw("popen")
    gw = makegw(f"socket={server.address}//via={hop.id}", via=hop)
    serving = gw._rinfo().pid
    os.kill(serving, 9)
    gw.join(TIMEOUT)
    assert not gw.hasreceiver()
    assert relay_gone(hop, server.address)


def test_refused_on_the_hop(makegw: MakeGateway) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: refused
        hop = makegw("popen")
        where = rf"from gateway '{hop.id}'"
        with pytest.raises(BootstrapError, match=rf"cannot connect .*:{port} {where}"):
            makegw(f"socket=127.0.0.1:{port}//via={hop.id}", via=hop)


def test_unresolvable_on_the_hop(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    with pytest.raises(HostNotFound, match=rf"no-such-host\.invalid.* on gateway '{hop.id}'"):
        makegw(f"socket=no-such-host.invalid:1//via={hop.id}", via=hop)
    assert hop.remote_exec("channel.send(2)").receive(TIMEOUT) == 2


def test_installvia_through_the_same_hop(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw(f"socket//installvia={hop.id}//via={hop.id}", via=hop, installvia=hop)
    assert gw.via_gateway is hop
    assert gw.remote_exec("channel.send(3)").receive(TIMEOUT) == 3
    gw.exit()
    gw.join(TIMEOUT)
    assert relay_gone(hop, gw.remoteaddress or "")


def test_installvia_with_another_via_is_refused(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    with pytest.raises(ValueError, match="via= must name the same gateway"):
        makegw("socket//installvia=a//via=b", via=hop, installvia=hop)


def test_a_group_makes_and_terminates_it(servers: Callable[..., Server]) -> None:
    from execnet_group import Group

    server = servers()
    group = Group()
    try:
        hop = group.makegateway("popen//id=hop")
        gw = group.makegateway(f"socket={server.address}//via=hop//id=far")
        assert gw.via_gateway is hop
        assert gw.remote_exec("channel.send(5)").receive(TIMEOUT) == 5
    finally:
        report = group.terminate(TIMEOUT)
    assert sorted(report.exited) == ["far", "hop"]
    assert not gw.hasreceiver()


_PATCHED = """
from gevent import monkey
monkey.patch_all()
import os, sys
from execnet_transport import XSpec, make_gateway
hop = make_gateway(XSpec("popen//id=hop"), execmodel="gevent")
gw = make_gateway(XSpec("socket=%s//via=hop//id=far"), via=hop, execmodel="gevent")
echo = gw.remote_exec("for item in channel: channel.send(item)")
data = os.urandom(3 << 20)
echo.send(data)
print("echoed:", echo.receive(30) == data)
gw.exit(); gw.join(30); hop.exit(); hop.join(30)
"""


def test_in_a_gevent_monkey_patched_process(servers: Callable[..., Server]) -> None:
    import subprocess
    import sys

    server = servers()
    out = subprocess.run(
        [sys.executable, "-c", _PATCHED % server.address],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "echoed: True" in out.stdout


@pytest.mark.parametrize("target", ["3.8", "pypy3"])
def test_the_relay_runs_on_other_interpreters(
    target: str, servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    import parts  # the relay travels: standard library only, CPython 3.8+ and PyPy3

    server = tls_server(servers, pki)
    hop = makegw(f"popen//python={parts.target_interpreter(target)}")
    gw = makegw(f"socket={server.address}//tls_ca={pki.ca}//via={hop.id}", via=hop)
    assert_echoes(gw, 3 << 20)
    gw.exit()
    gw.join(TIMEOUT)
    assert relay_gone(hop, server.address)


@pytest.mark.parametrize("model", ["main_thread_only", "gevent", "eventlet"])
def test_the_relay_works_in_every_hop_execmodel(
    model: str, servers: Callable[..., Server], makegw: MakeGateway
) -> None:
    server = servers()
    hop = makegw(f"popen//execmodel={model}")
    gw = makegw(f"socket={server.address}//via={hop.id}", via=hop)
    assert_echoes(gw, 3 << 20)
    gw.exit()
    gw.join(TIMEOUT)
    assert relay_gone(hop, server.address)
    assert hop.remote_status().execmodel == model


# Installed on a hop before the relay starts: records what the hop's sockets send and
# receive (the relay's, the only sockets there), to see what the via host could read.
SPY = """
import socket, sys, types
spy = sys.modules["relay_spy"] = types.ModuleType("relay_spy")
spy.seen = bytearray()
original_sendall, original_recv = socket.socket.sendall, socket.socket.recv
def sendall(self, data, *args):
    spy.seen.extend(bytes(data))
    return original_sendall(self, data, *args)
def recv(self, *args):
    data = original_recv(self, *args)
    spy.seen.extend(data)
    return data
socket.socket.sendall, socket.socket.recv = sendall, recv
channel.send("spying")
"""


@pytest.mark.parametrize("tls", [False, True])
def test_what_the_via_host_sees(
    tls: bool, servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    server = tls_server(servers, pki) if tls else servers()
    hop = makegw("popen")
    assert hop.remote_exec(SPY).receive(TIMEOUT) == "spying"
    keys = f"//tls_ca={pki.ca}" if tls else ""
    gw = makegw(f"socket={server.address}{keys}//via={hop.id}", via=hop)
    there, back = os.urandom(8).hex().encode(), os.urandom(8).hex().encode()
    echo = gw.remote_exec(
        "channel.send(channel.receive() + b'|' + BACK)".replace("BACK", repr(back))
    )
    echo.send(there)
    assert echo.receive(TIMEOUT) == there + b"|" + back
    seen = hop.remote_exec("import sys; channel.send(bytes(sys.modules['relay_spy'].seen))")
    relayed = seen.receive(TIMEOUT)
    assert len(relayed) > 10000  # the bootstrap (with the bundle) went through the spy
    if tls:  # ciphertext only, both ways
        assert there not in relayed
        assert back not in relayed
        assert b"execnet" not in relayed  # not even the bundle's sources
    else:  # the control: without TLS the hop reads everything
        assert there in relayed
        assert back in relayed
