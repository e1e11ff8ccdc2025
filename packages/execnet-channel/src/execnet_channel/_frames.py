"""Message framing: pure functions over bytes (no reads, no writes).

A frame is a 9-byte header followed by its payload::

    offset  size  field
    0       1     kind        (one of the FrameKind values below)
    1       4     channel id  (signed big-endian; 0 where no channel is concerned)
    5       4     length      (unsigned big-endian: bytes of payload that follow)
    9       n     payload     (an execnet_serial payload without the version byte, or empty)

A header is judged by ``check_header`` alone, on every receive path (the receiver's
loop, a thread reading for itself, IOs without ``readinto``: all of them go through
``_receiving.Receiving._pump``, directly or through ``pending_frame_size``): an unknown
kind, or a length over the gateway's maximum frame size, is a FrameError as soon as the
9 header bytes are there, before any payload is read or any memory is set aside for it.
(The receiver skips the call for a CHANNEL_DATA frame that lies whole in its buffer:
that one cannot fail it, its kind being known and the buffer smaller than the smallest
maximum, ``MIN_MAX_FRAME``.)

The receiver parses frames where they sit in its buffer (``_pump``); ``decode_frames``,
every whole frame of a buffer plus how many bytes those used, is for readers of a
captured stream (tests, tools).
"""

from __future__ import annotations

import struct

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]
    Frame = Tuple[int, int, memoryview]  # kind, channel id, payload: a view into the buffer

__all__ = [
    "DEFAULT_MAX_FRAME",
    "FRAME_NAMES",
    "HEADER",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "MIN_MAX_FRAME",
    "FrameError",
    "FrameTooLarge",
    "check_header",
    "check_max_frame",
    "decode_frames",
    "describe_frame",
    "describe_size",
    "encode_frame",
    "encode_header",
    "pending_frame_size",
]

HEADER = struct.Struct("!BiI")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 0xFFFFFFFF  # what the length field holds: the format's own ceiling

# The largest payload a gateway sends or accepts unless told otherwise (max_frame=). One
# frame carries one item, and the receiver holds a frame whole until it is decoded (then
# the item as well), so the limit bounds what a peer can pin in memory with one frame.
# 1 GiB is far above the items execnet is used for (pytest-xdist reports are KiBs; rsync
# streams 1 MiB pieces; bulk items of hundreds of MiB pass with room to spare), while a
# frame of several GiB costs the receiver twice that in memory and is better streamed in
# pieces. Raised per gateway up to the format's ceiling (4 GiB - 1).
DEFAULT_MAX_FRAME = 1 << 30
# The smallest limit a gateway takes: every frame that fits the 256 KiB receive buffer
# is then within the limit, so only a frame that does not fit needs the size check
# (and exec requests of whole modules, status answers... always fit).
MIN_MAX_FRAME = 1 << 20

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
# Output forwarding (see _output.py). The opener turns it on and off with OUTPUT_CONTROL;
# the remote sends what its fds 1/2 and its loggers wrote as OUTPUT and LOG_RECORD frames,
# at most a window of bytes ahead of the OUTPUT_ACKs that say how much the opener used.
OUTPUT_CONTROL = 12  # payload (forward_output: bool, log_level: int or None, opener pid)
OUTPUT = 13  # channel field: 1 (stdout) or 2 (stderr); payload: the bytes as written
OUTPUT_ACK = 14  # channel field: bytes of OUTPUT/LOG_RECORD payload used since the last ack
LOG_RECORD = 15  # payload: dict(name=, levelno=, levelname=, msg=, exc_text=, created=, ...)
# 12-15: reserved for output forwarding. Remote import on demand (_importer), 19 reserved:
IMPORT_ALLOW = 16  # opener -> remote, channel 0: payload (top-level name, ...) now allowed
IMPORT_REQUEST = (
    17  # remote -> opener on a fresh channel: ("module", name) or ("data"|"list", path)
)
IMPORT_ANSWER = 18  # opener -> remote on the request's channel: payload dict (see _importer)

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
    OUTPUT_CONTROL: "OUTPUT_CONTROL",
    OUTPUT: "OUTPUT",
    OUTPUT_ACK: "OUTPUT_ACK",
    LOG_RECORD: "LOG_RECORD",
    IMPORT_ALLOW: "IMPORT_ALLOW",
    IMPORT_REQUEST: "IMPORT_REQUEST",
    IMPORT_ANSWER: "IMPORT_ANSWER",
}


class FrameError(ValueError):
    """Bytes that are not a valid frame: an unknown kind, a control payload that does not
    load, or a frame over the maximum size; the text names what and where.

    A receiver that meets one closes the connection: the stream cannot be trusted past
    it. Raised when sending, nothing was written.
    """


class FrameTooLarge(FrameError):
    """A frame over the maximum frame size (``size`` and ``limit`` in bytes).

    Received: the connection is closed at the header, before any of the payload is
    read. Sent: refused before anything is written; the gateway goes on working.
    """

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


def describe_size(size: int) -> str:
    """A byte count for humans: exact, and rounded to a binary unit when large.

    >>> describe_size(12), describe_size(0xFFFFFFFF)
    ('12 bytes', '4294967295 bytes (4.0 GiB)')
    """
    if size < 1024:
        return f"{size} bytes"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size} bytes ({size / (1 << shift):.1f} {unit})"
    raise AssertionError(size)  # pragma: no cover


def check_max_frame(max_frame: int) -> int:
    """``max_frame`` if it is a valid limit (MIN_MAX_FRAME to MAX_PAYLOAD), else ValueError.

    >>> check_max_frame(DEFAULT_MAX_FRAME) == 1 << 30
    True
    """
    if type(max_frame) is not int or not MIN_MAX_FRAME <= max_frame <= MAX_PAYLOAD:
        raise ValueError(
            f"max_frame={max_frame!r}: the maximum frame size must be an int from "
            f"{MIN_MAX_FRAME} (1 MiB) to {MAX_PAYLOAD} (4 GiB - 1) bytes"
        )
    return max_frame


def check_header(kind: int, channel_id: int, length: int, max_frame: int, at: int) -> None:
    """Raise the FrameError for a header that no receiver accepts; ``at`` is where the
    frame starts in the stream (named in the error).

    Every receive path judges headers with this function alone (directly, or through
    ``pending_frame_size``), so a bad frame has the same outcome on all of them (see the
    module's docstring for the one frame the receiver need not ask about).

    >>> check_header(CHANNEL_DATA, 1, 10, DEFAULT_MAX_FRAME, 0)
    >>> try:
    ...     check_header(99, 1, 10, DEFAULT_MAX_FRAME, 18)
    ... except FrameError as exc:
    ...     print(exc)
    unknown frame kind 99 at byte 18 of the stream
    """
    if kind not in FRAME_NAMES:
        raise FrameError(f"unknown frame kind {kind} at byte {at} of the stream")
    if length > max_frame:
        raise FrameTooLarge(
            f"{FRAME_NAMES[kind]} frame on channel {channel_id} at byte {at} of the stream "
            f"declares {describe_size(length)}, over the maximum frame size, "
            f"max_frame={describe_size(max_frame)}",
            length,
            max_frame,
        )


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
    data: Buffer, start: int = 0, end: Optional[int] = None, max_frame: int = MAX_PAYLOAD
) -> Tuple[List[Frame], int]:
    """Every whole frame in ``data[start:end]`` and the offset just past the last one.

    The payloads are memoryviews into ``data``: use them before ``data`` changes. A bad
    header (``check_header``) raises FrameError, also one whose frame is incomplete.

    >>> frames, used = decode_frames(encode_frame(CHANNEL_DATA, 1, b"Q") + b"\\x05")
    >>> [(kind, channel_id, bytes(payload)) for kind, channel_id, payload in frames], used
    ([(5, 1, b'Q')], 10)
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    if end is None:
        end = len(view)
    frames: List[Frame] = []
    pos = start
    while True:
        size = pending_frame_size(view, pos, end, max_frame)
        if size > end - pos:
            return frames, pos
        kind, channel_id, _ = HEADER.unpack_from(view, pos)
        frames.append((kind, channel_id, view[pos + HEADER_SIZE : pos + size]))
        pos += size


def pending_frame_size(
    data: Buffer,
    start: int = 0,
    end: Optional[int] = None,
    max_frame: int = MAX_PAYLOAD,
    at: Optional[int] = None,
) -> int:
    """The whole size (header included) of the frame beginning at ``start``.

    Returns HEADER_SIZE while not even the header is there; once it is, a bad header
    raises FrameError (``check_header``; ``at``: the frame's position in the stream, for
    the error, default ``start``) before anything of its payload need be read.

    >>> pending_frame_size(encode_header(CHANNEL_DATA, 1, 1000))
    1009
    """
    if end is None:
        end = len(data)
    if end - start < HEADER_SIZE:
        return HEADER_SIZE
    kind, channel_id, length = HEADER.unpack_from(data, start)
    if length > max_frame or kind not in FRAME_NAMES:
        check_header(kind, channel_id, length, max_frame, start if at is None else at)
    return HEADER_SIZE + int(length)
