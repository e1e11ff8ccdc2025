"""A peer that disappears mid-stream: every waiter wakes, nothing hangs."""

from __future__ import annotations

import os
import threading
from typing import Any, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_channel import BaseGateway, FdIO, RemoteError, SocketIO, get_execmodel
from execnet_channel._frames import (
    CHANNEL_DATA,
    FRAME_NAMES,
    GATEWAY_TERMINATE,
    HEADER_SIZE,
    decode_frames,
    encode_frame,
)
from execnet_serial import dumps_payload

TIMEOUT = 30.0


class FakePeer:
    """The far end written by hand: reads what arrives, writes frames, then vanishes."""

    def __init__(self) -> None:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        self.read_fd, self.write_fd = r2, w1
        self.gw = BaseGateway(FdIO(r1, w2), "gw", opener=True)
        self.received = b""

    def read_frames(self, count: int) -> List[Any]:
        while True:
            frames, _ = decode_frames(self.received)
            if len(frames) >= count:
                return [(kind, cid, bytes(p)) for kind, cid, p in frames]
            self.received += os.read(self.read_fd, 65536)

    def send(self, channel_id: int, item: object) -> None:
        os.write(self.write_fd, encode_frame(CHANNEL_DATA, channel_id, dumps_payload(item)))

    def vanish(self, partial: bool = True) -> None:
        if partial:  # half a frame first: the receiver must not wait for the rest
            os.write(self.write_fd, encode_frame(CHANNEL_DATA, 1, b"N\x00\x00")[: HEADER_SIZE + 2])
        os.close(self.write_fd)
        os.close(self.read_fd)


@pytest.mark.parametrize("order", ["receivers-first", "vanish-first"])
def test_vanishing_peer_wakes_every_receive_and_fires_endmarkers(order: str) -> None:
    # receivers started before the peer vanishes (some may already block in receive(),
    # some not: any interleaving must work), or only after it vanished
    peer = FakePeer()
    gw = peer.gw
    waiting = [gw.remote_exec("channel.receive()") for _ in range(4)]
    ended: List[Any] = []
    done = threading.Event()

    def callback(item: Any) -> None:
        ended.append(item)
        if item == "END":
            done.set()

    with_callback = gw.remote_exec("pass")
    with_callback.setcallback(callback, endmarker="END")
    peer.read_frames(5)
    peer.send(waiting[0].id, "before the end")
    peer.send(with_callback.id, "item")

    errors: List[Any] = []

    def receive(channel: Any) -> None:
        try:
            while True:
                errors.append(("item", channel.receive(TIMEOUT)))
        except EOFError as exc:
            errors.append(("eof", str(exc)))
        except Exception as exc:
            errors.append(("other", exc))

    threads = [threading.Thread(target=receive, args=(channel,)) for channel in waiting]
    if order == "vanish-first":
        peer.vanish()
    for thread in threads:
        thread.start()
    if order == "receivers-first":
        peer.vanish()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert ("item", "before the end") in errors
    eofs = [e for e in errors if e[0] == "eof"]
    assert len(eofs) == 4, errors
    assert all("connection to the other side lost" in text for _, text in eofs)
    assert done.wait(TIMEOUT)
    assert ended == ["item", "END"]
    gw.join(TIMEOUT)
    assert not gw.hasreceiver()
    for channel in waiting:
        assert isinstance(channel._getremoteerror(), EOFError)
        with pytest.raises(OSError):
            channel.send(1)
    late = gw.newchannel()
    with pytest.raises(EOFError):
        late.receive(TIMEOUT)
    late.setcallback(callback, endmarker="LATE")
    assert ended[-1] == "LATE"


def test_send_to_a_dead_peer_raises_oserror_and_never_hangs() -> None:
    peer = FakePeer()
    channel = peer.gw.remote_exec("channel.receive()")
    os.close(peer.read_fd)  # nobody reads any more; the write side is still open

    def send_until_it_fails() -> None:
        for _ in range(1000):
            channel.send(b"x" * 100000)

    with pytest.raises(OSError):  # (a send that hangs would be pytest's timeout)
        send_until_it_fails()
    os.close(peer.write_fd)
    peer.gw.join(TIMEOUT)


def test_vanishing_socket_peer() -> None:
    model = get_execmodel("thread")
    a, b = model.socket.socketpair()
    gw = BaseGateway(SocketIO(a), "gw", opener=True)
    channel = gw.remote_exec("channel.receive()")
    b.recv(100)
    b.close()
    with pytest.raises(EOFError):
        channel.receive(TIMEOUT)
    with pytest.raises(OSError):
        channel.send(1)
    gw.join(TIMEOUT)
    gw._io.close_read()
    gw._io.close_write()


def test_corrupt_stream_ends_the_gateway_with_eof(capfd: pytest.CaptureFixture[str]) -> None:
    peer = FakePeer()
    channel = peer.gw.remote_exec("channel.receive()")
    peer.read_frames(1)
    os.write(peer.write_fd, b"\xee" + bytes(8))
    with pytest.raises(EOFError, match="unknown frame kind 238 at byte 0 of the stream"):
        channel.receive(TIMEOUT)
    peer.gw.join(TIMEOUT)
    assert "corrupt stream from the other side: unknown frame kind 238 at byte 0" in (
        capfd.readouterr().err
    )
    peer.vanish(partial=False)


frames = st.lists(
    st.tuples(
        st.sampled_from(sorted(FRAME_NAMES)),
        st.integers(-3, 12),
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([dumps_payload(x) for x in [None, 1, "x", (True, False), (1,)]]),
        ),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(frames)
def test_any_frame_sequence_ends_cleanly(sequence: List[Any]) -> None:
    """Whatever a broken peer writes, waiters end with an item, EOFError or RemoteError
    and nothing but a one-line "corrupt stream" report reaches stderr."""
    import contextlib
    import io
    import sys

    stderr = io.StringIO()
    peer = FakePeer()
    gw = peer.gw
    channel = gw.remote_exec("channel.receive()")
    with contextlib.redirect_stderr(stderr):
        sys.stderr = stderr
        for kind, channel_id, payload in sequence:
            if kind == GATEWAY_TERMINATE:
                continue
            os.write(peer.write_fd, encode_frame(kind, channel_id, payload))
        peer.vanish(partial=False)
        with contextlib.suppress(EOFError, RemoteError):
            while True:
                channel.receive(TIMEOUT)
        gw.join(TIMEOUT)
    assert not gw.hasreceiver()
    assert "Traceback" not in stderr.getvalue(), stderr.getvalue()
