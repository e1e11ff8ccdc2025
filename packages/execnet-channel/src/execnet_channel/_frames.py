"""Message framing: pure functions over bytes (no reads, no writes).

A frame is a 9-byte header followed by its payload::

    offset  size  field
    0       1     kind        (one of the FrameKind values below)
    1       4     channel id  (signed big-endian; 0 where no channel is concerned)
    5       4     length      (unsigned big-endian: bytes of payload that follow)
    9       n     payload     (an execnet_serial payload without the version byte, or empty)

The receiver feeds whatever bytes it has to ``decode_frames`` and gets back every whole
frame in them plus how many bytes those used; the rest waits for more input.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]
    Frame = Tuple[int, int, memoryview]  # kind, channel id, payload: a view into the buffer

__all__ = [
    "FRAME_NAMES",
    "HEADER",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "FrameError",
    "decode_frames",
    "describe_frame",
    "encode_frame",
    "encode_header",
    "pending_frame_size",
]


HEADER = struct.Struct("!BiI")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 0xFFFFFFFF

# The kinds (fixed numbers: both ends of a gateway must agree on them).
STATUS = 1  # status request; the answer goes to the request's channel id
RECONFIGURE = 2  # payload (py2str_as_py3str, py3str_as_py2str); channel 0 = the whole gateway
GATEWAY_TERMINATE = 3  # the other side stops serving and exits
CHANNEL_EXEC = 4  # payload (source, filename, firstlineno, callname, kwargs) on a new channel
CHANNEL_DATA = 5  # payload: one item
CHANNEL_CLOSE = 6  # the sender closed the channel (sends nothing more, receives nothing more)
CHANNEL_CLOSE_ERROR = 7  # the same with an error text (payload: str) raised as RemoteError
CHANNEL_LAST_MESSAGE = 8  # the sender will send nothing more but may still receive
STATUS_ANSWER = 9  # payload: dict(numchannels=, numexecuting=, execmodel=)
INFO = 10  # request for the remote interpreter's facts
INFO_ANSWER = 11  # payload: dict(executable=, version_info=, platform=, cwd=, pid=)

FRAME_NAMES = {
    STATUS: "STATUS",
    RECONFIGURE: "RECONFIGURE",
    GATEWAY_TERMINATE: "GATEWAY_TERMINATE",
    CHANNEL_EXEC: "CHANNEL_EXEC",
    CHANNEL_DATA: "CHANNEL_DATA",
    CHANNEL_CLOSE: "CHANNEL_CLOSE",
    CHANNEL_CLOSE_ERROR: "CHANNEL_CLOSE_ERROR",
    CHANNEL_LAST_MESSAGE: "CHANNEL_LAST_MESSAGE",
    STATUS_ANSWER: "STATUS_ANSWER",
    INFO: "INFO",
    INFO_ANSWER: "INFO_ANSWER",
}


class FrameError(ValueError):
    """Bytes that are not a frame (unknown kind); names the kind and the offset."""


def describe_frame(kind: int, channel_id: int, size: int) -> str:
    """A frame for humans (traces): ``CHANNEL_DATA channel=3 (12 bytes)``.

    >>> describe_frame(CHANNEL_CLOSE, 3, 0)
    'CHANNEL_CLOSE channel=3 (0 bytes)'
    """
    return f"{FRAME_NAMES.get(kind, str(kind))} channel={channel_id} ({size} bytes)"


def encode_header(kind: int, channel_id: int, length: int) -> bytes:
    """The 9 header bytes of a frame whose payload has ``length`` bytes.

    >>> encode_header(CHANNEL_DATA, 3, 2)
    b'\\x05\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x02'
    """
    if kind not in FRAME_NAMES:
        raise FrameError(f"unknown frame kind {kind}")
    if not 0 <= length <= MAX_PAYLOAD:
        raise FrameError(f"frame payload of {length} bytes does not fit a frame")
    return HEADER.pack(kind, channel_id, length)


def encode_frame(kind: int, channel_id: int, payload: Buffer = b"") -> bytes:
    """A whole frame: header and payload in one bytes object.

    >>> encode_frame(GATEWAY_TERMINATE, 0)
    b'\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'
    """
    return encode_header(kind, channel_id, len(payload)) + payload


def decode_frames(
    data: Buffer, start: int = 0, end: Optional[int] = None
) -> Tuple[List[Frame], int]:
    """Every whole frame in ``data[start:end]`` and the offset just past the last one.

    The payloads are memoryviews into ``data``: use them before ``data`` changes.

    >>> frames, used = decode_frames(encode_frame(CHANNEL_DATA, 1, b"Q") + b"\\x05")
    >>> [(kind, channel_id, bytes(payload)) for kind, channel_id, payload in frames], used
    ([(5, 1, b'Q')], 10)
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    if end is None:
        end = len(view)
    frames: List[Frame] = []
    unpack = HEADER.unpack_from
    pos = start
    while end - pos >= HEADER_SIZE:
        kind, channel_id, length = unpack(view, pos)
        if kind not in FRAME_NAMES:
            raise FrameError(f"unknown frame kind {kind} at offset {pos}")
        stop = pos + HEADER_SIZE + length
        if stop > end:
            break
        frames.append((kind, channel_id, view[pos + HEADER_SIZE : stop]))
        pos = stop
    return frames, pos


def pending_frame_size(data: Buffer, start: int = 0, end: Optional[int] = None) -> int:
    """The whole size (header included) of the frame beginning at ``start``.

    Returns HEADER_SIZE while not even the header is there.

    >>> pending_frame_size(encode_header(CHANNEL_DATA, 1, 1000))
    1009
    """
    if end is None:
        end = len(data)
    if end - start < HEADER_SIZE:
        return HEADER_SIZE
    kind, _, length = HEADER.unpack_from(data, start)
    if kind not in FRAME_NAMES:
        raise FrameError(f"unknown frame kind {kind} at offset {start}")
    return HEADER_SIZE + int(length)
