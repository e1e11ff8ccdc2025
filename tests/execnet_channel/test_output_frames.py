"""The opener's half of output forwarding against a peer written by hand (issue 13):
what it does with OUTPUT and LOG_RECORD frames, good and bad, and when it acks."""

from __future__ import annotations

import logging
import os
from typing import Any, List, Tuple

import pytest

from execnet_channel import _output
from execnet_channel._frames import (
    LOG_RECORD,
    OUTPUT,
    OUTPUT_ACK,
    OUTPUT_CONTROL,
    encode_frame,
)
from execnet_serial import dumps_payload, loads_payload


def _peer_death_module():  # type: ignore[no-untyped-def]
    # test_peer_death's FakePeer, the far end written by hand (tests/ holds no packages)
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("test_peer_death.py")
    spec = importlib.util.spec_from_file_location("_peer_death_for_output", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_peer_death = _peer_death_module()
FakePeer = _peer_death.FakePeer
TIMEOUT: float = _peer_death.TIMEOUT


def _peer_with_callback() -> Tuple[Any, List[Tuple[str, bytes]]]:
    peer = FakePeer()
    lines: List[Tuple[str, bytes]] = []
    peer.gw.forward_output(lambda stream, data: lines.append((stream, data)), logging="INFO")
    kind, channel_id, payload = peer.read_frames(1)[0]
    assert (kind, channel_id) == (OUTPUT_CONTROL, 0)
    assert loads_payload(payload) == (True, logging.INFO, os.getpid())
    return peer, lines


def test_lines_are_split_and_the_partial_line_comes_at_the_end() -> None:
    peer, lines = _peer_with_callback()
    os.write(peer.write_fd, encode_frame(OUTPUT, 1, b"one\ntw"))
    os.write(peer.write_fd, encode_frame(OUTPUT, 2, b"err\n"))
    os.write(peer.write_fd, encode_frame(OUTPUT, 1, b"o\nthr"))
    channel = peer.gw.newchannel()
    peer.vanish(partial=False)
    with pytest.raises(EOFError):
        channel.receive(TIMEOUT)
    # delivered before the EOFError woke us
    assert lines == [
        ("stdout", b"one\n"),
        ("stderr", b"err\n"),
        ("stdout", b"two\n"),
        ("stdout", b"thr"),
    ]


def test_a_long_line_without_newline_goes_in_pieces() -> None:
    peer, lines = _peer_with_callback()
    for _ in range(3):
        os.write(peer.write_fd, encode_frame(OUTPUT, 1, b"z" * (_output.MAX_LINE // 2 + 1)))
    peer.vanish(partial=False)
    peer.gw.join(TIMEOUT)
    piece = _output.MAX_LINE // 2 + 1
    assert [len(data) for _, data in lines] == [_output.MAX_LINE, 3 * piece - _output.MAX_LINE]


def test_every_quarter_window_is_acked() -> None:
    peer, _ = _peer_with_callback()
    chunk = b"x" * 1023 + b"\n"
    for _ in range(_output.ACK_EVERY // len(chunk)):
        os.write(peer.write_fd, encode_frame(OUTPUT, 1, chunk))
    kind, count, payload = peer.read_frames(2)[1]
    assert (kind, count, payload) == (OUTPUT_ACK, _output.ACK_EVERY, b"")
    peer.vanish(partial=False)
    peer.gw.join(TIMEOUT)


def test_an_output_frame_for_another_fd_ends_the_gateway(
    capfd: pytest.CaptureFixture[str],
) -> None:
    peer, _ = _peer_with_callback()
    channel = peer.gw.newchannel()
    os.write(peer.write_fd, encode_frame(OUTPUT, 3, b"where to?\n"))
    with pytest.raises(EOFError, match=r"OUTPUT frame on channel 3 .* only 1 \(stdout\) and 2"):
        channel.receive(TIMEOUT)
    peer.gw.join(TIMEOUT)
    assert "corrupt stream" in capfd.readouterr().err
    peer.vanish(partial=False)


def test_a_log_record_of_wrong_types_is_made_safe(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="execnet.remote")
    peer, _ = _peer_with_callback()
    hostile = {
        "levelno": 30,
        "name": ["not", "a", "name"],
        "msg": 12345,
        "created": "yesterday",
        "lineno": "many",
        "exc_text": b"bytes",
    }
    os.write(peer.write_fd, encode_frame(LOG_RECORD, 0, dumps_payload(hostile)))
    os.write(peer.write_fd, encode_frame(LOG_RECORD, 0, dumps_payload("not a record")))
    channel = peer.gw.newchannel()
    with pytest.raises(EOFError, match=r"LOG_RECORD frame on channel 0 .* not a log record"):
        channel.receive(TIMEOUT)
    peer.gw.join(TIMEOUT)
    (record,) = [r for r in caplog.records if r.name == "execnet.remote.gw"]
    assert (record.levelno, record.getMessage(), record.lineno) == (30, "12345", 0)
    assert record.exc_text == "b'bytes'"
    assert isinstance(record.created, float)
    logging.Formatter("%(asctime)s %(message)s %(remote_name)s").format(record)
    peer.vanish(partial=False)
