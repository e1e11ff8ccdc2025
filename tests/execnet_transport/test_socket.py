"""socket gateways to our socket server (a real subprocess): plain, secret, TLS, mutual TLS.

The attacks on the server (relays, idle and slow peers, ...) are in tests/hostile.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List

import parts
import pytest
from socketservers import PKI, Server, assert_echoes, tls_server

from execnet_channel import NotProperlyTerminated
from execnet_transport import BootstrapError, Gateway, HostNotFound, XSpec, make_gateway

MakeGateway = Callable[..., Gateway]


def test_socket_gateway(servers: Callable[..., Server], makegw: MakeGateway) -> None:
    server = servers()
    gw = makegw(f"socket={server.address}")
    assert gw.remoteaddress == server.address
    assert gw.child_pid is None
    info = gw._rinfo()
    assert info.pid not in (os.getpid(), server.process.pid)  # a child of the server
    ch = gw.remote_exec("import execnet_channel; channel.send(execnet_channel.__spec__.origin)")
    assert ch.receive(10).startswith("<execnet bundle>/")


def test_server_binds_localhost_by_default() -> None:
    from execnet_transport.socketserver import DEFAULT_ADDRESS, _parse_address

    assert DEFAULT_ADDRESS.startswith("127.0.0.1:")
    assert _parse_address(":9000") == ("127.0.0.1", 9000)
    with pytest.raises(ValueError, match="HOST:PORT"):
        _parse_address("nonsense")


def test_many_clients_at_once_a_hung_one_blocks_nobody(
    servers: Callable[..., Server], makegw: MakeGateway
) -> None:
    server = servers()
    host, port = server.address.rsplit(":", 1)
    hung = socket.create_connection((host, int(port)))  # connects, never sends its line
    try:
        gw1 = makegw(f"socket={server.address}")
        busy = gw1.remote_exec("channel.send('busy'); channel.receive()")
        assert busy.receive(10) == "busy"
        gw2 = makegw(f"socket={server.address}")  # served while gw1's code runs
        assert gw2.remote_exec("channel.send(2)").receive(10) == 2
        busy.send("done")
    finally:
        hung.close()


@pytest.mark.parametrize("model", ["thread", "main_thread_only", "gevent"])
def test_socket_honours_execmodel(
    model: str, servers: Callable[..., Server], makegw: MakeGateway
) -> None:
    server = servers()
    gw = makegw(f"socket={server.address}//execmodel={model}")
    assert gw.remote_status().execmodel == model


def test_options_over_socket(
    servers: Callable[..., Server], makegw: MakeGateway, tmp_path: Path
) -> None:
    server = servers()
    gw = makegw(f"socket={server.address}//chdir={tmp_path / 'x'}//env:EXECNET_S=1")
    ch = gw.remote_exec("import os; channel.send((os.getcwd(), os.environ['EXECNET_S']))")
    assert ch.receive(10) == (str(tmp_path / "x"), "1")


def test_server_death_is_reported(servers: Callable[..., Server], makegw: MakeGateway) -> None:
    server = servers()
    gw = makegw(f"socket={server.address}//id=sockdie")
    waiter = gw.remote_exec("channel.receive()")
    gw.remote_exec("import os; os._exit(1)")  # the process serving this gateway dies
    with pytest.raises(EOFError) as info:
        waiter.receive(10)
    assert "'sockdie'" in str(info.value)
    assert f"socket server at {server.address} closed the connection" in str(info.value)
    died = waiter._getremoteerror()
    assert isinstance(died, NotProperlyTerminated)
    assert str(died).startswith("Not properly terminated: ")
    assert "closed the connection" in str(died)


def test_secret(servers: Callable[..., Server], makegw: MakeGateway, secret_file: Path) -> None:
    server = servers("--secret-file", str(secret_file))
    gw = makegw(f"socket={server.address}//secret_file={secret_file}")
    assert gw.remote_exec("channel.send(1)").receive(10) == 1


def test_wrong_secret_is_refused_and_logged(
    servers: Callable[..., Server], makegw: MakeGateway, secret_file: Path, tmp_path: Path
) -> None:
    server = servers("--secret-file", str(secret_file))
    wrong = tmp_path / "wrong"
    wrong.write_text("not the secret\n")
    with pytest.raises(BootstrapError, match=r"refused the handshake .*wrong secret"):
        makegw(f"socket={server.address}//secret_file={wrong}")
    # without a secret: the client sends the long-standing line, which is refused; the
    # error says what the server wanted (from its greeting, or as a hint if the refusal
    # reset the connection before the greeting was read)
    with pytest.raises(BootstrapError, match=r"requires authentication|want a secret"):
        makegw(f"socket={server.address}")
    log = server.stop()
    assert log.count("failed the shared-secret proof; nothing was run") == 1, log
    assert log.count("not an EXECNET-2 client") == 1, log


def test_secret_needed_by_client_but_server_has_none(
    servers: Callable[..., Server], secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execnet_transport import _socket

    monkeypatch.setattr(_socket, "CHALLENGE_TIMEOUT", 1.0)
    server = servers()
    with pytest.raises(BootstrapError, match="no shared-secret challenge"):
        make_gateway(
            XSpec(f"socket={server.address}//secret_file={secret_file}//id=nochallenge"),
        )


def test_nothing_runs_for_a_peer_without_the_secret(
    servers: Callable[..., Server], secret_file: Path, tmp_path: Path
) -> None:
    server = servers("--secret-file", str(secret_file))
    proof = tmp_path / "ran"
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(repr(f"open({str(proof)!r}, 'w').close()").encode() + b"\n")
        sock.settimeout(10)
        data = b""
        while True:
            chunk = sock.recv(100)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"EXECNET-2 hmac-sha256 ")
    assert "not an EXECNET-2 client" in server.stop()
    assert not proof.exists()


def test_installvia(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw("socket//installvia=x", installvia=hop)
    host, port = gw.remoteaddress.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    info = gw._rinfo()
    assert info.pid not in (hop._rinfo().pid, os.getpid())


def test_unresolvable_host(makegw: MakeGateway) -> None:
    with pytest.raises(HostNotFound, match=r"no-such-host\.invalid"):
        makegw("socket=no-such-host.invalid:8888")


def test_nothing_listening(makegw: MakeGateway) -> None:
    from sshd import _free_port

    with pytest.raises(BootstrapError, match="cannot connect"):
        makegw(f"socket=127.0.0.1:{_free_port()}")


def test_bad_address(makegw: MakeGateway) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        makegw("socket=localhost")


def test_serve_socket_once(tmp_path: Path) -> None:
    # serve_socket(loop=False) serves one connection and returns when it is done.
    code = (
        "from execnet_transport import serve_socket\n"
        "serve_socket('127.0.0.1', 0, loop=False,"
        " on_listening=lambda h, p: print(f'listening on {h}:{p}', flush=True))\n"
        "print('returned', flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    host, _, port = process.stdout.readline().split()[-1].rpartition(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(repr("clientsock.sendall(b'hi')").encode() + b"\n")
        assert sock.recv(2) == b"hi"
    assert process.stdout.readline() == "returned\n"
    assert process.wait(10) == 0
    process.stdout.close()


# -- TLS --------------------------------------------------------------------------------


def test_tls_gateway(servers: Callable[..., Server], makegw: MakeGateway, pki: PKI) -> None:
    server = tls_server(servers, pki)
    gw = makegw(f"socket={server.address}//tls_ca={pki.ca}")
    assert type(gw._io).__name__ == "TLSSocketIO"
    ch = gw.remote_exec(
        "import os; io = channel.gateway._io\n"
        "channel.send((os.getpid(), type(io).__name__, io.sock.version()))"
    )
    pid, io, version = ch.receive(10)
    assert pid != server.pid  # a fork of the server serves it
    assert io == "TLSSocketIO"
    assert version in ("TLSv1.2", "TLSv1.3")
    assert "not authenticated (none required)" in server.wait_for_log("served by pid")


def test_tls_carries_big_items_both_ways_from_many_threads(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    # one reader and several writers on each side at once: the TLS lock's whole job
    server = tls_server(servers, pki)
    gw = makegw(f"socket={server.address}//tls_ca={pki.ca}")
    echo = "for item in channel: channel.send(item)"
    items = [os.urandom(size) for size in (1, 16383, 16385, 3 << 20)]
    results: List[bool] = []

    def work() -> None:
        channel = gw.remote_exec(echo)
        for item in items:
            channel.send(item)
        results.append(all(channel.receive(60) == item for item in items))
        channel.close()
        channel.waitclose(60)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == [True] * 4


def test_tls_server_on_pypy(servers: Callable[..., Server], makegw: MakeGateway, pki: PKI) -> None:
    """The fork that serves a TLS client runs the server's interpreter: PyPy here."""
    import execnet_channel
    import execnet_serial
    import execnet_transport

    modules = (execnet_serial, execnet_channel, execnet_transport)
    sources = [os.path.dirname(os.path.dirname(str(module.__file__))) for module in modules]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sources)}
    command = (parts.pypy3(), "-m", "execnet_transport.socketserver")
    server = tls_server(servers, pki, command=command, env=env)
    gw = makegw(f"socket={server.address}//tls_ca={pki.ca}")
    assert gw.remote_exec("import sys; channel.send(sys.implementation.name)").receive(30) == "pypy"
    assert_echoes(gw, 3 << 20)


def test_mutual_tls(servers: Callable[..., Server], makegw: MakeGateway, pki: PKI) -> None:
    server = tls_server(servers, pki, "--tls-client-ca", str(pki.ca))
    keys = f"tls_ca={pki.ca}//tls_cert={pki.client_cert}//tls_key={pki.client_key}"
    gw = makegw(f"socket={server.address}//{keys}")
    assert gw.remote_exec("channel.send(6 * 7)").receive(10) == 42
    assert "authenticated by TLS client certificate 'client'" in server.wait_for_log(
        "served by pid"
    )


def test_mutual_tls_with_a_secret(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI, secret_file: Path
) -> None:
    server = tls_server(
        servers, pki, "--tls-client-ca", str(pki.ca), "--secret-file", str(secret_file)
    )
    keys = f"tls_ca={pki.ca}//tls_cert={pki.client_cert}//tls_key={pki.client_key}"
    gw = makegw(f"socket={server.address}//{keys}//secret_file={secret_file}")
    assert gw.remote_exec("channel.send(1)").receive(10) == 1
    log = server.wait_for_log("served by pid")
    assert "authenticated by the shared secret and TLS client certificate 'client'" in log


@pytest.mark.parametrize("model", ["thread", "main_thread_only", "gevent", "eventlet"])
def test_tls_honours_execmodel(
    model: str, servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    server = tls_server(servers, pki)
    gw = makegw(f"socket={server.address}//tls_ca={pki.ca}//execmodel={model}")
    assert gw.remote_status().execmodel == model
    assert_echoes(gw, 1 << 20)


def test_tls_client_needs_a_certificate_the_server_trusts(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    server = tls_server(servers, pki, "--tls-client-ca", str(pki.ca))
    with pytest.raises(BootstrapError, match="client certificate"):
        makegw(f"socket={server.address}//tls_ca={pki.ca}")
    other = f"tls_cert={pki.other_client_cert}//tls_key={pki.other_client_key}"
    with pytest.raises(BootstrapError, match="refused the connection"):
        makegw(f"socket={server.address}//tls_ca={pki.ca}//{other}")
    log = server.wait_for_log("refused: TLS:", count=2)
    assert "served by pid" not in log


def test_tls_server_must_verify(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI
) -> None:
    server = tls_server(servers, pki)
    with pytest.raises(BootstrapError, match=r"does not verify for '127\.0\.0\.1'"):
        makegw(f"socket={server.address}//tls_ca={pki.other_ca}")
    with pytest.raises(BootstrapError, match="does not verify"):
        makegw(f"socket={server.address}//tls")  # the system's CAs do not know ours
    elsewhere = servers(
        "--tls-cert", str(pki.wrong_name_cert), "--tls-key", str(pki.wrong_name_key)
    )
    with pytest.raises(BootstrapError, match=r"does not verify for '127\.0\.0\.1'"):
        makegw(f"socket={elsewhere.address}//tls_ca={pki.ca}")
    # the name to check can be given: the certificate is for elsewhere.invalid
    spec = f"socket={elsewhere.address}//tls_ca={pki.ca}//tls_hostname=elsewhere.invalid"
    assert makegw(spec).remote_exec("channel.send(1)").receive(10) == 1
    assert "served by pid" not in server.stop()


def test_tls_and_plain_do_not_mix(
    servers: Callable[..., Server], makegw: MakeGateway, pki: PKI, secret_file: Path
) -> None:
    tls = tls_server(servers, pki)
    with pytest.raises(BootstrapError, match=r"(closed|reset) the connection"):
        makegw(f"socket={tls.address}")
    plain = servers()
    with pytest.raises(BootstrapError, match=r"TLS handshake with .* failed"):
        makegw(f"socket={plain.address}//tls_ca={pki.ca}")
    # a client with a secret refuses a server that asks for none: it could not prove it
    with pytest.raises(BootstrapError, match="asks for no secret"):
        makegw(f"socket={tls.address}//tls_ca={pki.ca}//secret_file={secret_file}")
    assert "served by pid" not in tls.stop() + plain.stop()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("popen//tls_ca=/x", "only works with socket"),
        ("popen//secret_file=/x", "only works with socket"),
        ("socket=127.0.0.1:1//tls_key=/k", "needs tls_cert="),
        ("socket=127.0.0.1:1//tls_ca", "needs a value"),
        ("socket=127.0.0.1:1//tls_hostname=h", "needs TLS"),
    ],
)
def test_bad_socket_keys_fail_before_connecting(spec: str, error: str, makegw: MakeGateway) -> None:
    with pytest.raises(ValueError, match=error):
        makegw(spec)


def test_installvia_takes_no_secret_or_tls(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    with pytest.raises(ValueError, match="makes its own fresh secret"):
        makegw("socket//installvia=x//secret_file=/x", installvia=hop)
