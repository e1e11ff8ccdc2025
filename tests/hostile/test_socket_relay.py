"""A socket server that lies, reached through a relay on a via host (socket=...//via=ID).

The server answers the handshake and the bootstrap as ours would, then sends garbage or
a frame header declaring 4 GiB. That ends the relayed gateway only, at its header: the
via gateway goes on working, and its relay (thread and socket) is gone.
"""

from __future__ import annotations

import marshal
import socket
import threading
import time
from typing import Iterator, List

import pytest

from execnet_channel._frames import CHANNEL_DATA, HEADER_SIZE, encode_header
from execnet_transport import Gateway, XSpec, make_gateway
from execnet_transport._bootstrap import SEND_BUNDLE, read_exactly

TIMEOUT = 30.0


class LyingServer:
    """Listens on 127.0.0.1; serves one connection: the handshake, the marker, `lie`."""

    def __init__(self, lie: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        host, port = self.listener.getsockname()[:2]
        self.address = f"{host}:{port}"
        self.lie = lie
        self.done = threading.Event()
        self.errors: List[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                line = b""
                while not line.endswith(b"\n"):
                    line += conn.recv(1)
                conn.sendall(SEND_BUNDLE)
                size = int.from_bytes(read_exactly(conn.recv, 4), "big")
                config, _bundle = marshal.loads(read_exactly(conn.recv, size))
                conn.sendall(config["marker"] + self.lie)
                while conn.recv(65536):  # until the gateway gives up on us
                    pass
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            self.done.set()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def hop() -> Iterator[Gateway]:
    gw = make_gateway(XSpec("popen//id=hop"))
    yield gw
    gw.exit()
    gw.join(TIMEOUT)
    gw.wait_child(TIMEOUT)


def relay_gone(hop: Gateway) -> bool:
    source = (
        "import threading\n"
        "channel.send([t.name for t in threading.enumerate()"
        " if t.name == 'execnet socket relay'])"
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if not hop.remote_exec(source).receive(TIMEOUT):
            return True
        time.sleep(0.05)
    return False


LIES = {
    "garbage": b"\xee" * HEADER_SIZE + b"and more garbage" * 1000,
    "a 4 GiB frame": encode_header(CHANNEL_DATA, 1, 0xFFFFFFFF) + b"a little",
}
EXPECTED = {
    "garbage": "unknown frame kind 238 at byte 0 of the stream",
    "a 4 GiB frame": "declares 4294967295 bytes (4.0 GiB), over the maximum frame size",
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_server_ends_its_gateway_only(
    lie: str, hop: Gateway, capfd: pytest.CaptureFixture[str]
) -> None:
    server = LyingServer(LIES[lie])
    try:
        gw = make_gateway(XSpec(f"socket={server.address}//via=hop//id=liar"), via=hop)
        gw.join(TIMEOUT)  # the receiver ends at the lie's header
        assert not gw.hasreceiver()
        assert EXPECTED[lie] in (gw._lost or "")
        with pytest.raises(OSError):
            gw.remote_exec("channel.send(1)")
        assert server.done.wait(TIMEOUT)  # the relay closed its connection to the server
        assert not server.errors, server.errors
        assert relay_gone(hop)
        assert hop.remote_exec("channel.send(6 * 7)").receive(TIMEOUT) == 42
        assert EXPECTED[lie] in capfd.readouterr().err  # one line, said where it happened
    finally:
        server.close()
