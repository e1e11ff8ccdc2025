"""The framing functions: pure, over bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execnet_channel import _frames
from execnet_channel._frames import (
    CHANNEL_DATA,
    FRAME_NAMES,
    HEADER_SIZE,
    FrameError,
    decode_frames,
    describe_frame,
    encode_frame,
    encode_header,
    pending_frame_size,
)


def test_header_layout() -> None:
    assert HEADER_SIZE == 9
    frame = encode_frame(CHANNEL_DATA, -3, b"abc")
    assert (
        frame
        == bytes([CHANNEL_DATA])
        + (-3).to_bytes(4, "big", signed=True)
        + (3).to_bytes(4, "big")
        + b"abc"
    )


def test_every_kind_has_a_distinct_number() -> None:
    kinds = [
        _frames.STATUS,
        _frames.RECONFIGURE,
        _frames.GATEWAY_TERMINATE,
        _frames.CHANNEL_EXEC,
        _frames.CHANNEL_DATA,
        _frames.CHANNEL_CLOSE,
        _frames.CHANNEL_CLOSE_ERROR,
        _frames.CHANNEL_LAST_MESSAGE,
        _frames.STATUS_ANSWER,
        _frames.INFO,
        _frames.INFO_ANSWER,
        _frames.OUTPUT_CONTROL,
        _frames.OUTPUT,
        _frames.OUTPUT_ACK,
        _frames.LOG_RECORD,
        _frames.IMPORT_ALLOW,
        _frames.IMPORT_REQUEST,
        _frames.IMPORT_ANSWER,
    ]
    assert sorted(kinds) == sorted(FRAME_NAMES)
    assert len(set(kinds)) == len(kinds)


def test_decode_stops_at_a_partial_frame() -> None:
    data = encode_frame(CHANNEL_DATA, 1, b"one") + encode_frame(CHANNEL_DATA, 3, b"two")
    frames, used = decode_frames(data[:-1])
    assert [(kind, cid, bytes(payload)) for kind, cid, payload in frames] == [
        (CHANNEL_DATA, 1, b"one")
    ]
    assert used == HEADER_SIZE + 3
    assert pending_frame_size(data, used, len(data) - 1) == HEADER_SIZE + 3
    assert pending_frame_size(data, used, used + 4) == HEADER_SIZE


def test_decode_with_offsets() -> None:
    data = b"junk" + encode_frame(_frames.GATEWAY_TERMINATE, 0) + b"more"
    frames, used = decode_frames(data, 4, len(data) - 4)
    assert len(frames) == 1
    assert frames[0][0] == _frames.GATEWAY_TERMINATE
    assert used == 4 + HEADER_SIZE
    kind, channel_id, payload = frames[0]
    assert describe_frame(kind, channel_id, len(payload)) == "GATEWAY_TERMINATE channel=0 (0 bytes)"


def test_unknown_kind_names_kind_and_offset() -> None:
    data = encode_frame(CHANNEL_DATA, 1, b"x") + b"\xee" + bytes(8)
    with pytest.raises(FrameError, match=r"kind 238 at byte 10 of the stream"):
        decode_frames(data)
    with pytest.raises(FrameError, match="kind 238"):
        pending_frame_size(b"\xee" + bytes(8))
    with pytest.raises(FrameError, match="kind 99"):
        encode_header(99, 0, 0)
    with pytest.raises(FrameError, match="does not fit"):
        encode_header(CHANNEL_DATA, 0, 2**32)


frame_strategy = st.tuples(
    st.sampled_from(sorted(FRAME_NAMES)),
    st.integers(-(2**31), 2**31 - 1),
    st.binary(max_size=300),
)


@given(st.lists(frame_strategy, max_size=20), st.lists(st.integers(1, 50), max_size=40))
def test_any_split_of_the_stream_decodes_the_same(
    frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(*frame) for frame in frames)
    got: list[tuple[int, int, bytes]] = []
    buffer = b""
    pos = 0
    for cut in [*cuts, len(stream)]:
        buffer += stream[pos : pos + cut]
        pos += cut
        decoded, used = decode_frames(buffer)
        got.extend((kind, cid, bytes(payload)) for kind, cid, payload in decoded)
        buffer = buffer[used:]
    buffer += stream[pos:]
    decoded, used = decode_frames(buffer)
    got.extend((kind, cid, bytes(payload)) for kind, cid, payload in decoded)
    assert got == frames
    assert used == len(buffer)
