"""The socket server against peers that want in, or want it down (issue 11).

Real server processes, real sockets, real children. A relay here is a real listener
in the middle; "nothing ran" is checked by a marker file the attacker's code would
write. Outcomes are judged by the server's log and by what the peers see, never by
how long something took.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from socketservers import PKI, Server, process_state

from execnet_group import Group
from execnet_transport import BootstrapError
from execnet_transport import socketserver as protocol

SCRIPT = Path(sys.executable).parent / "execnet"
WAIT = 30.0  # seconds any expected event may take on a loaded machine


@pytest.fixture
def group() -> Iterator[Group]:
    group = Group()
    yield group
    group.terminate(10)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(os.urandom(16).hex() + "\n")
    return path


MODES = ["plain", "secret", "tls"]


@dataclass(frozen=True)
class Mode:
    """How a test's server authenticates: its options and the client's spec keys."""

    name: str
    options: List[str]
    keys: str


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, secret: Path) -> Mode:
    name = request.param
    pki = request.getfixturevalue("pki") if name == "tls" else None
    return Mode(name, mode_options(name, secret, pki), mode_keys(name, secret, pki))


def mode_options(mode: str, secret: Path, pki: Optional[PKI]) -> List[str]:
    if mode == "secret":
        return ["--secret-file", str(secret)]
    if mode == "tls":
        assert pki is not None
        return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    return []


def mode_keys(mode: str, secret: Path, pki: Optional[PKI]) -> str:
    if mode == "secret":
        return f"//secret_file={secret}"
    if mode == "tls":
        assert pki is not None
        return f"//tls_ca={pki.ca}"
    return ""


def connect(server: Server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=WAIT)


def read_line(sock: socket.socket, limit: int = 4096) -> bytes:
    line = b""
    while not line.endswith(b"\n") and len(line) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the peer closes (a reset counts as the end)."""
    data = b""
    sock.settimeout(WAIT)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()\n"


# -- point 3: resources before authentication ------------------------------------------


def test_idle_connections_start_no_process(
    mode: Mode, servers: Callable[..., Server], group: Group
) -> None:
    server = servers(*mode.options)
    idle = [connect(server) for _ in range(10)]
    try:
        # accepted after the ten idle ones (the backlog is first in, first out)
        gw = group.makegateway(f"socket={server.address}{mode.keys}")
        pid = gw.remote_exec("import os; channel.send(os.getpid())").receive(WAIT)
        assert server.children() == [pid]
        assert server.log().count("served by pid") == 1
    finally:
        for sock in idle:
            sock.close()


def test_a_peer_that_dawdles_is_cut_at_the_handshake_deadline(
    mode: Mode, servers: Callable[..., Server]
) -> None:
    """One deadline for the whole handshake: a byte now and then does not extend it."""
    server = servers("--handshake-timeout", "1", *mode.options)
    sock = connect(server)
    stop = threading.Event()

    def drip() -> None:  # a hex digit every 0.2 s: never a full line, never a header
        while not stop.wait(0.2):
            try:
                sock.sendall(b"a")
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    if mode.name != "tls":  # into a TLS handshake, garbage is refused at once: stay silent
        dripper.start()
    try:
        server.wait_for_log("refused: no complete handshake within 1 s", WAIT)
        tail = read_to_end(sock)
        assert b"\n" not in tail.partition(b"\n")[2]  # at most the greeting came
    finally:
        stop.set()
        sock.close()
    assert server.children() == []


def test_connections_in_the_handshake_are_capped(
    servers: Callable[..., Server], secret: Path, group: Group
) -> None:
    server = servers("--secret-file", str(secret), "--max-pending", "2")
    first, second = connect(server), connect(server)
    try:
        for sock in (first, second):
            assert read_line(sock).startswith(b"EXECNET-2 hmac-sha256 ")
        server.wait_for_log("the most allowed")
        third = connect(server)  # waits in the listen backlog: no greeting yet
        try:
            assert select.select([third], [], [], 0.5)[0] == []
            first.close()  # a place frees: the third is taken in and greeted
            assert read_line(third).startswith(b"EXECNET-2 hmac-sha256 ")
        finally:
            third.close()
        second.close()
        gw = group.makegateway(f"socket={server.address}//secret_file={secret}")
        assert gw.remote_exec("channel.send(1)").receive(WAIT) == 1
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("mode", ["plain", "tls"], indirect=True)
def test_children_are_reaped_when_they_end(
    mode: Mode, servers: Callable[..., Server], group: Group
) -> None:
    server = servers(*mode.options)
    gw = group.makegateway(f"socket={server.address}{mode.keys}")
    pid = gw.remote_exec("import os; channel.send(os.getpid())").receive(WAIT)
    gw.exit()
    gw.join(WAIT)
    server.wait_for_log(f"pid {pid} ended", WAIT)  # no other connection came meanwhile
    deadline = time.monotonic() + WAIT
    while process_state(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process_state(pid) is None, "an ended child is left a zombie"


def test_a_child_that_cannot_start_is_logged_and_the_server_goes_on(
    servers: Callable[..., Server], group: Group, tmp_path: Path
) -> None:
    # The server runs from a link to the interpreter, so it starts its children from the
    # link; while the link is gone, starting a child fails (FileNotFoundError).
    link = tmp_path / "python3"
    real = os.path.realpath(sys.executable)
    link.symlink_to(real)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(_sources())}
    server = servers(command=(str(link), "-m", "execnet_transport.socketserver"), env=env)
    link.unlink()
    with pytest.raises(BootstrapError):
        group.makegateway(f"socket={server.address}")
    server.wait_for_log("cannot start a process for it")
    link.symlink_to(real)
    gw = group.makegateway(f"socket={server.address}")
    assert gw.remote_exec("channel.send('still serving')").receive(WAIT) == "still serving"


def _sources() -> List[str]:
    """Where this process imports the packages a server needs from (the interpreter
    behind the link has none of them installed)."""
    import execnet_channel
    import execnet_serial
    import execnet_transport

    modules = (execnet_serial, execnet_channel, execnet_transport)
    return [os.path.dirname(os.path.dirname(str(module.__file__))) for module in modules]


# -- point 4: children start isolated ----------------------------------------------------

# What a child (or the bootstrap in it) would import, planted in the server's working
# directory; each one leaves a marker if it is ever imported.
SHADOWED = ("ast", "hmac", "socket", "zlib", "marshal", "selectors", "execnet_cwd_probe")


def test_children_import_nothing_from_the_working_directory(
    mode: Mode, servers: Callable[..., Server], group: Group, tmp_path: Path
) -> None:
    cwd, markers = tmp_path / "cwd", tmp_path / "markers"
    cwd.mkdir()
    markers.mkdir()
    for name in SHADOWED:
        (cwd / f"{name}.py").write_text(
            f"import os\nopen(os.path.join({str(markers)!r}, {name!r}), 'w').close()\n"
        )
    server = servers("--loop", *mode.options, command=(str(SCRIPT), "serve"), cwd=cwd)
    gw = group.makegateway(f"socket={server.address}{mode.keys}")
    ch = gw.remote_exec(
        "import os, sys\n"
        "try:\n"
        "    import execnet_cwd_probe\n"
        "    found = True\n"
        "except ImportError:\n"
        "    found = False\n"
        "channel.send((os.getcwd(), sys.path, found, sys.flags.isolated))\n"
    )
    cwd_there, path, found, isolated = ch.receive(WAIT)
    assert cwd_there == str(cwd)
    assert "" not in path
    assert str(cwd) not in path
    assert not found
    assert sorted(os.listdir(markers)) == []
    if mode.name != "tls":
        assert isolated  # python -I
    assert "served by pid" in server.log()


def test_a_forked_child_drops_the_working_directory_from_its_path(
    servers: Callable[..., Server], group: Group, pki: PKI, tmp_path: Path
) -> None:
    """A TLS server started with `python -m` has its working directory on sys.path;
    the fork that runs a client's code must not (what -I gives a new interpreter)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "execnet_cwd_probe.py").write_text("raise SystemExit('imported from the cwd')\n")
    server = servers(*mode_options("tls", Path(), pki), cwd=cwd)
    gw = group.makegateway(f"socket={server.address}//tls_ca={pki.ca}")
    ch = gw.remote_exec(
        "import sys\n"
        "try:\n"
        "    import execnet_cwd_probe\n"
        "    found = True\n"
        "except ImportError:\n"
        "    found = False\n"
        "import execnet_channel\n"
        "channel.send((sys.path, found, execnet_channel.__spec__.origin))\n"
    )
    path, found, origin = ch.receive(WAIT)
    assert "" not in path
    assert str(cwd) not in path
    assert not found
    assert origin.startswith("<execnet bundle>/")  # the client's, not the server's


# -- point 2: relays, fake servers, replays -------------------------------------------


class Relay:
    """A listener in the middle: accepts one client, connects to `target`, and runs
    `attack(client, upstream)` in a thread; what it returns is kept in `result`."""

    def __init__(self, target: Server, attack: Callable[[socket.socket, socket.socket], bytes]):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.result: List[bytes] = []
        self.errors: List[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(target, attack), daemon=True)
        self._thread.start()

    def _run(self, target: Server, attack: Callable[[socket.socket, socket.socket], bytes]) -> None:
        try:
            client, _ = self.listener.accept()
            client.settimeout(WAIT)
            with client, connect(target) as upstream:
                self.result.append(attack(client, upstream))
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.listener.close()

    def join(self) -> bytes:
        self._thread.join(WAIT)
        assert not self._thread.is_alive()
        if self.errors:
            raise self.errors[0]
        return self.result[0]


def test_a_relay_cannot_run_its_own_code_with_a_genuine_clients_proof(
    servers: Callable[..., Server], group: Group, secret: Path, tmp_path: Path
) -> None:
    """The attack of issue 11: relay the server's challenge to a genuine client, pass
    its answer on, then send the relay's own code. The proof covers the code now."""
    server = servers("--secret-file", str(secret))
    marker = tmp_path / "relay-ran"
    own = marker_code(marker).encode()

    def attack(client: socket.socket, upstream: socket.socket) -> bytes:
        client.sendall(read_line(upstream))  # the server's challenge, to the client
        answer = read_line(client)  # the client's proof
        upstream.sendall(answer)
        fields = answer.split()
        if len(fields) == 4 and fields[2].isdigit():  # EXECNET-2: its own code, same length
            length = int(fields[2])
            upstream.sendall(own + b"#" * (length - len(own)))
        else:  # a one-line answer: then a line of its own
            upstream.sendall(repr(own.decode()).encode() + b"\n")
        return read_to_end(upstream)

    relay = Relay(server, attack)
    with pytest.raises(BootstrapError):
        group.makegateway(f"socket={relay.address}//secret_file={secret}")
    relay.join()
    log = server.wait_for_log("refused")
    assert "the source does not match its MAC" in log
    assert "served by pid" not in log
    assert not marker.exists()


def test_a_relay_that_passes_everything_through_runs_the_clients_code_only(
    servers: Callable[..., Server], group: Group, secret: Path
) -> None:
    """Relaying faithfully is no attack on the handshake: the client's code runs, the
    proofs hold (what the stream carries afterwards is TLS's to protect)."""
    server = servers("--secret-file", str(secret))

    def attack(client: socket.socket, upstream: socket.socket) -> bytes:
        def pump(source: socket.socket, sink: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    sink.sendall(data)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(WAIT)
        return b""

    relay = Relay(server, attack)
    gw = group.makegateway(f"socket={relay.address}//secret_file={secret}")
    assert gw.remote_exec("channel.send('through')").receive(WAIT) == "through"
    gw.exit()
    gw.join(WAIT)
    relay.join()


@pytest.mark.parametrize("reply", ["made up", "the client's own proof"])
def test_a_server_that_does_not_know_the_secret_gets_nothing_more(
    reply: str, group: Group, secret: Path
) -> None:
    """The client checks the server's proof before it sends its bootstrap (config,
    environment) or any code: a fake server, or one reflecting the client's proof, is
    refused."""
    listener = socket.create_server(("127.0.0.1", 0))
    after_hello: List[bytes] = []

    def fake() -> None:
        client, _ = listener.accept()
        with client:
            client.settimeout(WAIT)
            client.sendall(protocol.greeting(protocol.AUTH_SECRET, os.urandom(32)))
            header = b""
            while len(header) < protocol.HEADER_SIZE:
                header += client.recv(protocol.HEADER_SIZE - len(header))
            _, proof, length, _ = protocol.parse_client_header(header)
            source = b""
            while len(source) < length:
                source += client.recv(length - len(source))
            made_up = os.urandom(32).hex().encode()
            client.sendall(b"OK " + (made_up if reply == "made up" else proof) + b"\n")
            client.sendall(b"\x00execnet-send-bundle\x00")  # as if it ran the first stage
            after_hello.append(read_to_end(client))

    thread = threading.Thread(target=fake, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        with pytest.raises(BootstrapError, match="did not prove it knows the secret"):
            group.makegateway(f"socket=127.0.0.1:{port}//secret_file={secret}")
        thread.join(WAIT)
    finally:
        listener.close()
    assert after_hello == [b""]  # no bootstrap frame, no config, no code


def test_a_replayed_hello_is_refused(servers: Callable[..., Server], secret: Path) -> None:
    """A client's proof is bound to the server's nonce of that connection."""
    server = servers("--secret-file", str(secret))
    key_secret = secret.read_bytes().strip()
    with connect(server) as first:
        _, nonce = protocol.parse_greeting(read_line(first))
        client_nonce = os.urandom(32)
        key = protocol.session_key(key_secret, nonce, client_nonce)
        hello = protocol.client_hello(key, client_nonce, b"channel = None\n")
    # the first connection was never completed; its hello goes to a second one
    with connect(server) as second:
        read_line(second)
        second.sendall(hello)
        assert read_to_end(second) == b""
    log = server.wait_for_log("refused", count=2)
    assert "failed the shared-secret proof" in log


def test_a_tls_listener_in_the_middle_is_refused_by_the_client(
    servers: Callable[..., Server], group: Group, pki: PKI
) -> None:
    """A listener presenting a certificate of another CA: the client's verification
    fails before it sends anything of its own."""
    server = servers(*mode_options("tls", Path(), pki))
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.other_server_cert), str(pki.other_server_key))
    seen: List[bytes] = []

    def attack(client: socket.socket, upstream: socket.socket) -> bytes:
        try:
            with context.wrap_socket(client, server_side=True) as tls:
                seen.append(tls.recv(65536))
        except (ssl.SSLError, OSError):
            pass
        return b""

    relay = Relay(server, attack)
    with pytest.raises(BootstrapError, match="does not verify"):
        group.makegateway(f"socket={relay.address}//tls_ca={pki.ca}")
    relay.join()
    assert seen == []
    assert "served by pid" not in server.stop()


@pytest.mark.parametrize("where", ["after the client hello", "after the handshake"])
def test_a_relay_cannot_inject_into_a_tls_stream(
    where: str, servers: Callable[..., Server], group: Group, pki: PKI, tmp_path: Path
) -> None:
    """A relay that forwards the TLS bytes but adds its own line of code: the server's
    TLS layer refuses the connection, nothing runs."""
    server = servers(*mode_options("tls", Path(), pki))
    marker = tmp_path / "relay-ran"
    injected = repr(marker_code(marker)).encode() + b"\n"

    def attack(client: socket.socket, upstream: socket.socket) -> bytes:
        chunks = {"count": 0}

        def back() -> None:
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            client.close()

        thread = threading.Thread(target=back, daemon=True)
        thread.start()
        try:
            while data := client.recv(65536):
                chunks["count"] += 1
                inject = chunks["count"] == (1 if where == "after the client hello" else 2)
                upstream.sendall(data + injected if inject else data)
        except OSError:
            pass
        upstream.close()
        thread.join(WAIT)
        return b""

    relay = Relay(server, attack)
    with pytest.raises(BootstrapError):
        group.makegateway(f"socket={relay.address}//tls_ca={pki.ca}")
    relay.join()
    log = server.wait_for_log("refused")
    assert "served by pid" not in log
    assert not marker.exists()
