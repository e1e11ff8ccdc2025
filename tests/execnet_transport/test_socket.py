"""socket gateways to our socket server (a real subprocess), with and without a secret."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Tuple

import pytest

from execnet_channel import NotProperlyTerminated
from execnet_transport import BootstrapError, Gateway, HostNotFound, XSpec, make_gateway

MakeGateway = Callable[..., Gateway]


class Server:
    def __init__(self, process: subprocess.Popen[str], host: str, port: int) -> None:
        self.process = process
        self.address = f"{host}:{port}"

    def log(self) -> str:
        """Everything the server (and its children) wrote to stderr, once it stopped."""
        self.stop()
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    *args: str, python: str = sys.executable, module: str = "execnet_transport.socketserver"
) -> Server:
    process = subprocess.Popen(
        [python, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until bound (or the server died)
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"socket server did not start: {line!r} {process.stderr.read()}")  # type: ignore[union-attr]
    host, _, port = line.split()[-1].rpartition(":")
    return Server(process, host, int(port))


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: List[Server] = []

    def start(*args: str) -> Server:
        server = start_server(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        for stream in (server.process.stdout, server.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(os.urandom(16).hex().encode() + b"\n")
    return path


def test_socket_gateway(servers: Callable[..., Server], makegw: MakeGateway) -> None:
    server = servers("127.0.0.1:0")
    gw = makegw(f"socket={server.address}")
    assert gw.remoteaddress == server.address
    assert gw._pid is None
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
    server = servers("127.0.0.1:0")
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
    server = servers("127.0.0.1:0")
    gw = makegw(f"socket={server.address}//execmodel={model}")
    assert gw.remote_status().execmodel == model


def test_options_over_socket(
    servers: Callable[..., Server], makegw: MakeGateway, tmp_path: Path
) -> None:
    server = servers("127.0.0.1:0")
    gw = makegw(f"socket={server.address}//chdir={tmp_path / 'x'}//env:EXECNET_S=1")
    ch = gw.remote_exec("import os; channel.send((os.getcwd(), os.environ['EXECNET_S']))")
    assert ch.receive(10) == (str(tmp_path / "x"), "1")


def test_server_death_is_reported(servers: Callable[..., Server], makegw: MakeGateway) -> None:
    server = servers("127.0.0.1:0")
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
    server = servers("127.0.0.1:0", "--secret-file", str(secret_file))
    gw = makegw(f"socket={server.address}//secret_file={secret_file}")
    assert gw.remote_exec("channel.send(1)").receive(10) == 1


def test_wrong_secret_is_refused_and_logged(
    servers: Callable[..., Server], makegw: MakeGateway, secret_file: Path, tmp_path: Path
) -> None:
    server = servers("127.0.0.1:0", "--secret-file", str(secret_file))
    wrong = tmp_path / "wrong"
    wrong.write_text("not the secret\n")
    with pytest.raises(BootstrapError, match="closed the connection before"):
        makegw(f"socket={server.address}//secret_file={wrong}")
    # without a secret: the client's line is taken as the answer, and refused
    with pytest.raises(BootstrapError):
        makegw(f"socket={server.address}")
    log = server.log()
    assert log.count("failed the shared-secret challenge; nothing was run") == 2


def test_secret_needed_by_client_but_server_has_none(
    servers: Callable[..., Server], secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execnet_transport import _connect

    monkeypatch.setattr(_connect, "CHALLENGE_TIMEOUT", 1.0)
    server = servers("127.0.0.1:0")
    with pytest.raises(BootstrapError, match="no shared-secret challenge"):
        make_gateway(
            XSpec(f"socket={server.address}//secret_file={secret_file}//id=nochallenge"),
        )


def test_nothing_runs_for_a_peer_without_the_secret(
    servers: Callable[..., Server], secret_file: Path, tmp_path: Path
) -> None:
    server = servers("127.0.0.1:0", "--secret-file", str(secret_file))
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
    assert data.startswith(b"EXECNET-HMAC-SHA256 ")
    assert "failed the shared-secret challenge" in server.log()
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


def _hostport(server: Server) -> Tuple[str, int]:
    host, port = server.address.rsplit(":", 1)
    return host, int(port)


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
