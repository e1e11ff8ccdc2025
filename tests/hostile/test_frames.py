"""A peer that lies in its frames: memory, limits, and one outcome on every receive path.

Issue 11, points 6 and 7. A 9-byte header may declare up to 4 GiB; what the receiver
sets aside must follow the bytes that really arrived, a frame over the gateway's
maximum ends that gateway (and only it) at its header, and the receiver's loop, a
thread reading in receive() (the lent role), the read(n)-only path of IOs without
readinto and a TLS socket (TLSSocketIO: its own reads over TLS records) judge a bad
frame the same way, to the letter of the error.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import ssl
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, Optional

import pytest
from gateway_contract import write_raw
from socketservers import PKI

from execnet_channel import (
    DEFAULT_MAX_FRAME,
    BaseGateway,
    FdIO,
    FrameTooLarge,
    RemoteError,
    TLSConnection,
    TLSSocketIO,
    get_execmodel,
    serve,
)
from execnet_channel._frames import (
    CHANNEL_DATA,
    HEADER_SIZE,
    MAX_PAYLOAD,
    RECONFIGURE,
    encode_frame,
    encode_header,
)
from execnet_group import Group
from execnet_serial import dumps_payload
from execnet_transport import XSpec, make_gateway
from execnet_transport._max_frame import max_frame_of, parse_size

TIMEOUT = 30.0
MiB = 1 << 20


def rss_kib() -> int:
    """This process's resident memory now (VmRSS), KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# -- in this process: a hand-written peer on raw pipes, every receive path ----------------


class PlainIO:
    """An IO with read(n) and write only (the IO protocol's minimum): the unbuffered
    path."""

    def __init__(self, io: FdIO) -> None:
        self._io = io
        self.execmodel = io.execmodel

    def read(self, numbytes: int) -> bytes:
        return self._io.read(numbytes)

    def write(self, data: bytes) -> None:
        self._io.write(data)

    def close_read(self) -> None:
        self._io.close_read()

    def close_write(self) -> None:
        self._io.close_write()

    def wait(self) -> Optional[int]:
        return None

    def kill(self) -> None:
        pass


def tls_pair(pki: PKI) -> Any:
    """Two ends of a socket pair with TLS on them: (the gateway's IO, the peer's IO)."""
    ours, theirs = socket.socketpair()
    client_context = ssl.create_default_context(cafile=str(pki.ca))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server = TLSConnection.server(theirs, server_context)
    server.settimeout(TIMEOUT)
    handshake = threading.Thread(target=server._waiting, args=(server.do_handshake,))
    handshake.start()
    client = TLSConnection.client(ours, client_context, "localhost", timeout=TIMEOUT)
    handshake.join(TIMEOUT)
    return TLSSocketIO(client), TLSSocketIO(server)


class RawPeer:
    """The far end of a gateway, written by hand: over two pipes, or (path "tls") over
    a TLS connection on a socket pair."""

    def __init__(
        self, path: str, max_frame: int = DEFAULT_MAX_FRAME, pki: Optional[PKI] = None
    ) -> None:
        io: Any
        self.peer_io: Any = None
        if path == "tls":
            assert pki is not None
            io, self.peer_io = tls_pair(pki)
        else:
            r1, w1 = os.pipe()
            r2, w2 = os.pipe()
            self.read_fd, self.write_fd = r2, w1
            io = FdIO(r1, w2)
            if path == "plain":
                io = PlainIO(io)
        self.io = io
        self.gw = BaseGateway(io, "gw", opener=True, max_frame=max_frame)
        self.sent = 0
        self.ended = False
        # keep what the gateway writes from filling its pipe
        self._drain = threading.Thread(target=self._drain_writes, daemon=True)
        self._drain.start()

    def _drain_writes(self) -> None:
        try:
            if self.peer_io is not None:
                buffer = memoryview(bytearray(65536))
                while True:
                    self.peer_io.readinto(buffer)  # EOFError at the end
            while os.read(self.read_fd, 65536):
                pass
        except (OSError, EOFError):
            pass

    def write(self, data: bytes) -> None:
        if self.peer_io is not None:
            self.peer_io.write(data)
        else:
            view = memoryview(data)
            while view:
                view = view[os.write(self.write_fd, view) :]
        self.sent += len(data)

    def item(self, channel_id: int, item: object) -> None:
        self.write(encode_frame(CHANNEL_DATA, channel_id, dumps_payload(item)))

    def end_stream(self) -> None:
        if not self.ended:
            self.ended = True
            if self.peer_io is not None:
                self.peer_io.close_write()
            else:
                os.close(self.write_fd)

    def close(self) -> None:
        self.end_stream()
        self.gw.join(TIMEOUT)
        self.gw.exit()
        if self.peer_io is not None:
            self.io.close_write()  # the drain then sees the end
        self._drain.join(TIMEOUT)
        if self.peer_io is not None:
            self.peer_io.close_read()
            self.peer_io.sock.close()
            self.io.close_read()
            self.io.sock.close()
        else:
            os.close(self.read_fd)
            self.io.close_read()


class Receiver:
    """A thread receiving on ``channel`` until EOFError; what it got, in order."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.got: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.got.put(("item", self.channel.receive(TIMEOUT)))
        except EOFError as exc:
            self.got.put(("eof", str(exc)))
        except Exception as exc:
            self.got.put(("error", repr(exc)))

    def next(self) -> Any:
        return self.got.get(timeout=TIMEOUT)


def reading_for_itself(thread: threading.Thread) -> bool:
    """Whether ``thread`` is in receive() holding the lent reading role (it keeps the
    role until bytes come, so it reads the next ones itself)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "_read_lent":
            return True
        frame = frame.f_back
    return False


def hold_the_lent_role(peer: RawPeer, receiver: Receiver) -> None:
    """Feed items until ``receiver``'s thread reads the stream itself and waits there."""
    for i in range(500):
        peer.item(receiver.channel.id, i)
        assert receiver.next() == ("item", i)
        if wait_until(lambda: reading_for_itself(receiver.thread), 0.2):
            return
    pytest.fail("the receiving thread never took the lent reading role")


PATHS = ["receiver", "lent", "plain", "tls"]


def garbage_for(name: str, channel_id: int) -> bytes:
    if name == "unknown kind":
        return bytes([0xEE]) + bytes(HEADER_SIZE - 1)
    if name == "over max_frame":
        return encode_header(CHANNEL_DATA, channel_id, 0xFFFFFFFF) + b"a little"
    if name == "control frame that does not load":
        return encode_header(RECONFIGURE, 0, 3) + b"\xff\xfe\xfd"
    raise AssertionError(name)


def bad_frame_outcome(
    path: str, garbage_name: str, capfd: pytest.CaptureFixture[str], pki: PKI
) -> Any:
    peer = RawPeer(path, pki=pki)
    try:
        channel = peer.gw.newchannel()
        receiver = Receiver(channel)
        peer.item(channel.id, "before")  # what came before a bad frame arrives
        assert receiver.next() == ("item", "before")
        if path == "lent":  # the bad frame is then read by that thread
            hold_the_lent_role(peer, receiver)
        at = peer.sent
        peer.write(garbage_for(garbage_name, channel.id))
        kind, text = receiver.next()
        assert kind == "eof", text
        assert peer.gw._lost == text
        peer.gw.join(TIMEOUT)
        assert not peer.gw.hasreceiver()
        with pytest.raises(OSError):
            channel.send(1)
        err = capfd.readouterr().err
        return at, text.replace(f"at byte {at} ", "at byte AT "), err
    finally:
        peer.close()


@pytest.mark.parametrize(
    "garbage", ["unknown kind", "over max_frame", "control frame that does not load"]
)
def test_a_bad_frame_has_one_outcome_on_every_receive_path(
    garbage: str, capfd: pytest.CaptureFixture[str], pki: PKI
) -> None:
    outcomes: Dict[str, Any] = {}
    for path in PATHS:
        at, text, err = bad_frame_outcome(path, garbage, capfd, pki)
        assert f"at byte {at} of the stream" in err, err
        assert err.count("\n") == 1, err  # one line on stderr, no traceback
        outcomes[path] = text
    assert len(set(outcomes.values())) == 1, outcomes  # to the letter, offset included
    text = outcomes["receiver"]
    assert text.startswith("gateway 'gw': connection closed, corrupt stream from the other side: ")
    expected = {
        "unknown kind": "unknown frame kind 238 at byte AT of the stream",
        "over max_frame": "CHANNEL_DATA frame on channel 1 at byte AT of the stream declares "
        "4294967295 bytes (4.0 GiB), over the maximum frame size, "
        "max_frame=1073741824 bytes (1.0 GiB)",
        "control frame that does not load": "RECONFIGURE frame on channel 0 at byte AT of the "
        "stream does not load: ",
    }[garbage]
    assert expected in text


@pytest.mark.parametrize("path", PATHS)
def test_a_lying_header_costs_what_was_sent(path: str, pki: PKI) -> None:
    """The issue's case on every path, with the limit raised to the format's ceiling so
    that the header is accepted: 4 GiB declared, 64 MiB sent, then the peer is gone."""
    sent = 64 * MiB
    peer = RawPeer(path, max_frame=MAX_PAYLOAD, pki=pki)
    try:
        channel = peer.gw.newchannel()
        receiver = Receiver(channel)
        if path == "lent":
            hold_the_lent_role(peer, receiver)
        before = rss_kib()
        peer.write(encode_header(CHANNEL_DATA, channel.id, 0xFFFFFFFF))
        chunk = b"x" * MiB
        for _ in range(sent // MiB):
            peer.write(chunk)
        peer.end_stream()  # mid-frame: the reader has read all of it when it ends
        kind, text = receiver.next()
        assert kind == "eof", text
        grown = (rss_kib() - before) // 1024
        # what arrived is held (the frame is incomplete); nothing near 4 GiB
        assert grown < 64 + 200, f"RSS grew by {grown} MiB for {sent // MiB} MiB received"
    finally:
        peer.close()


def test_big_frames_within_the_limit_still_arrive_whole() -> None:
    peer = RawPeer("receiver", max_frame=MAX_PAYLOAD)
    try:
        channel = peer.gw.newchannel()
        for size in (300_000, 5 * MiB, 70 * MiB, 2 * MiB):  # new, bigger, dropped, kept
            item = bytes([size % 251]) * size
            peer.item(channel.id, item)
            assert channel.receive(TIMEOUT) == item
    finally:
        peer.close()


# -- the limit on the sending side, and on the remote -----------------------------------


@pytest.fixture
def group() -> Iterator[Group]:
    group = Group()
    yield group
    group.terminate(TIMEOUT)


def test_an_item_over_the_limit_is_refused_in_the_sender(group: Group) -> None:
    gw = group.makegateway("popen//max_frame=1M")
    assert gw.max_frame == MiB
    assert gw.remote_exec("channel.send(channel.gateway.max_frame)").receive(TIMEOUT) == MiB
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    with pytest.raises(FrameTooLarge) as info:
        echo.send(b"x" * MiB)  # 1 MiB of bytes plus its opcode and length: over
    text = str(info.value)
    assert f"gateway {gw.id!r}: an item of 1048582 bytes (1.0 MiB) for channel {echo.id}" in text
    assert "max_frame=1048576 bytes (1.0 MiB); nothing was sent" in text
    assert isinstance(info.value, ValueError)
    echo.send(b"x" * (MiB - 100))  # what fits goes through, and the gateway goes on
    assert echo.receive(TIMEOUT) == b"x" * (MiB - 100)
    # the remote knows the limit too: its send raises there, in the remote code
    channel = gw.remote_exec("channel.send(b'y' * (1 << 20))")
    with pytest.raises(RemoteError, match=r"FrameTooLarge: .*max_frame=1048576 bytes"):
        channel.receive(TIMEOUT)
    # a traceback too big for a frame is cut to fit, and the channel still closes
    channel = gw.remote_exec("raise ValueError('z' * (2 << 20))")
    with pytest.raises(RemoteError, match="characters cut: over the maximum frame size"):
        channel.receive(TIMEOUT)
    assert gw.remote_exec("channel.send('still serving')").receive(TIMEOUT) == "still serving"


def test_the_remote_holds_the_callers_frames_to_the_same_limit(group: Group) -> None:
    gw = group.makegateway("popen//max_frame=1M")
    waiting = gw.remote_exec("channel.receive()")
    with gw._writelock:  # a caller that ignores the limit it set (bypassing send())
        gw._io.write(encode_header(CHANNEL_DATA, waiting.id, 2 * MiB) + b"x" * 1000)
    with pytest.raises(EOFError) as info:
        waiting.receive(TIMEOUT)
    text = str(info.value)
    assert "the remote process ended" in text
    assert "corrupt stream from the other side: CHANNEL_DATA frame on channel" in text
    assert "declares 2097152 bytes (2.0 MiB), over the maximum frame size, " in text
    assert "max_frame=1048576 bytes (1.0 MiB)" in text


def test_serve_without_a_limit_uses_the_default() -> None:
    model = get_execmodel("thread")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    served = threading.Event()

    def run() -> None:
        try:
            serve(FdIO(r2, w1, model), "remote", exit_process=False)
        finally:
            served.set()

    threading.Thread(target=run, daemon=True).start()
    gw = BaseGateway(FdIO(r1, w2, model), "gw", opener=True, max_frame=MAX_PAYLOAD)
    try:
        assert gw.remote_exec("channel.send(channel.gateway.max_frame)").receive(TIMEOUT) == (
            DEFAULT_MAX_FRAME
        )
        waiting = gw.remote_exec("channel.receive()")
        with gw._writelock:
            gw._io.write(encode_header(CHANNEL_DATA, waiting.id, DEFAULT_MAX_FRAME + 1))
        assert served.wait(TIMEOUT), "serve() did not end at a frame over its limit"
        with pytest.raises(EOFError):
            waiting.receive(TIMEOUT)
    finally:
        gw.exit()
        gw.join(TIMEOUT)
        gw._io.close_read()


def test_a_bad_frame_ends_only_that_gateway(group: Group) -> None:
    liar = group.makegateway("popen")
    honest = group.makegateway("popen")
    waiting = liar.newchannel()
    liar.remote_exec(write_raw, data=encode_header(CHANNEL_DATA, waiting.id, 0xFFFFFFFF))
    with pytest.raises(EOFError) as info:
        waiting.receive(TIMEOUT)
    text = str(info.value)
    assert text.startswith(f"gateway {liar.id!r}: connection closed, corrupt stream")
    assert "declares 4294967295 bytes (4.0 GiB), over the maximum frame size" in text
    assert liar._wait_process(TIMEOUT) is not None  # its pipes were closed: it ended
    with pytest.raises(OSError):
        liar.remote_exec("pass")
    channel = honest.remote_exec("channel.send(channel.receive() + 1)")
    channel.send(41)
    assert channel.receive(TIMEOUT) == 42
    assert honest.hasreceiver()


def test_via_a_bad_frame_ends_the_via_gateway_not_its_hop(group: Group) -> None:
    hop = group.makegateway("popen//id=hop")
    gw = group.makegateway("popen//via=hop//id=far")
    waiting = gw.newchannel()
    gw.remote_exec(write_raw, data=bytes([0xEE]) + bytes(8))
    with pytest.raises(EOFError, match=r"'far': connection closed, corrupt stream .* kind 238"):
        waiting.receive(TIMEOUT)
    # the child behind the hop ends, and its exit status still comes back
    assert gw._wait_process(TIMEOUT) is not None
    assert hop.remote_exec("channel.send('hop still works')").receive(TIMEOUT) == (
        "hop still works"
    )


def test_via_frames_bigger_than_the_hops_limit_go_through_in_pieces(group: Group) -> None:
    group.makegateway("popen//id=hop//max_frame=1M")
    gw = group.makegateway("popen//via=hop//id=far//max_frame=8M")
    channel = gw.remote_exec("for item in channel: channel.send(item)")
    item = b"p" * (3 * MiB)  # over the hop's 1 MiB: the proxy gets it in pieces
    channel.send(item)
    assert channel.receive(TIMEOUT) == item


# -- real processes: the caller's own memory -------------------------------------------

# Runs as a separate caller process (so its peak RSS is its own): opens a gateway whose
# remote writes a header declaring 0xFFFFFFFF bytes, sends SENT bytes of it and exits.
CALLER = r"""
import json, sys
from execnet_group import Group
from execnet_channel._frames import CHANNEL_DATA, encode_header

def hwm_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

LIE = '''
import os
gateway = channel.gateway
with gateway._writelock:
    gateway._io.write(HEADER)
    chunk = b"x" * (1 << 20)
    for _ in range(SENT >> 20):
        gateway._io.write(chunk)
os._exit(0)
'''

how, spec, sent = sys.argv[1], sys.argv[2], int(sys.argv[3])
group = Group()
if how == "via":
    group.makegateway("popen//id=hop")
gw = group.makegateway(spec)
waiting = gw.newchannel()
assert gw.remote_exec("channel.send(1)").receive(30) == 1
before = hwm_kib()
header = encode_header(CHANNEL_DATA, waiting.id, 0xFFFFFFFF)
gw.remote_exec(LIE.replace("HEADER", repr(header)).replace("SENT", str(sent)))
try:
    waiting.receive(60)
except EOFError as exc:
    text = str(exc)
else:
    text = "no EOFError"
print(json.dumps({"grown_mib": (hwm_kib() - before) // 1024, "text": text}))
group.terminate(30)
"""


def run_caller(how: str, spec: str, sent: int) -> Dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", CALLER, how, spec, str(sent)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: Dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return outcome


@pytest.mark.parametrize(
    ("how", "spec"),
    [("popen", "popen//max_frame=4G"), ("via", "popen//via=hop//max_frame=4G")],
)
def test_a_remote_declaring_4_gib_costs_the_caller_what_it_sent(how: str, spec: str) -> None:
    sent = 32 * MiB
    outcome = run_caller(how, spec, sent)
    assert "connection lost" in outcome["text"] or "ended" in outcome["text"], outcome
    assert outcome["grown_mib"] < 32 + 200, outcome  # not 4096


def test_a_remote_declaring_4_gib_over_the_default_limit_costs_nothing() -> None:
    outcome = run_caller("popen", "popen", 32 * MiB)
    assert "declares 4294967295 bytes (4.0 GiB), over the maximum frame size" in outcome["text"]
    assert outcome["grown_mib"] < 100, outcome


# -- the max_frame= spec key -------------------------------------------------------------


def test_max_frame_values() -> None:
    assert parse_size("1048576") == MiB
    assert parse_size("64k") == 64 * 1024
    assert parse_size("512M") == parse_size("512MiB") == parse_size("512mb") == 512 * MiB
    assert parse_size("2G") == 2 << 30
    assert max_frame_of(XSpec("popen")) == DEFAULT_MAX_FRAME == 1 << 30
    assert max_frame_of(XSpec("popen//max_frame=1M")) == MiB
    assert max_frame_of(XSpec("popen//max_frame=4G")) == MAX_PAYLOAD == 0xFFFFFFFF
    for bad in ("max_frame", "max_frame=", "max_frame=10", "max_frame=1023K", "max_frame=5G",
                "max_frame=1.5G", "max_frame=-1M", "max_frame=lots"):  # fmt: skip
        spec = XSpec(f"popen//id=bad//{bad}")
        with pytest.raises(ValueError, match=r"max_frame=.* in gateway spec .*expected a size"):
            max_frame_of(spec)
        with pytest.raises(ValueError, match="max_frame="):
            make_gateway(spec)  # refused before anything starts
    read_fd, write_fd = os.pipe()
    io = FdIO(read_fd, write_fd)
    with pytest.raises(ValueError, match="maximum frame size must be an int"):
        BaseGateway(io, "gw", opener=True, max_frame=1000)
    io.close_read()
    io.close_write()


def test_the_default_limit_leaves_room_for_big_items(group: Group) -> None:
    gw = group.makegateway("popen")
    item = b"b" * (300 * MiB)  # "items of hundreds of MiB are legitimate"
    channel = gw.remote_exec("channel.send(len(channel.receive()))")
    channel.send(item)
    assert channel.receive(TIMEOUT) == len(item)
    del item
    channel = gw.remote_exec("channel.send(b'c' * (300 << 20))")
    assert len(channel.receive(TIMEOUT)) == 300 * MiB
