"""dump/load over binary files: one value per call, several values per file.

load must not read past the value's STOP (the next value follows in the same file), so
it reads opcode by opcode: each opcode's payload size is known from the opcode itself
or from the int4 length it starts with. The bytes collected are then decoded by the
same decoder as loads. Long payloads are read in bounded chunks, so a hostile length
cannot make load allocate more than the file holds.
"""

from __future__ import annotations

import struct

from ._decoder import decode
from ._errors import LoadError
from ._opcodes import NAMES, VERSION_BYTE
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple

    from ._hook import ChannelHook

__all__ = ["read_value"]

_CHUNK = 1 << 20

# opcode -> (fixed payload size, payload starts with an int4 length of more bytes)
_PAYLOAD: Dict[int, Tuple[int, bool]] = {}
for _ops, _size, _counted in (
    (b"CJLQR", 0, False),
    (b"@BEFGKO", 4, False),
    (b"D", 8, False),
    (b"T", 16, False),
    (b"AHIMNS", 4, True),
    (b"P", 0, False),
):
    for _op in _ops:
        _PAYLOAD[_op] = (_size, _counted)


def _read_exactly(read: Callable[[int], bytes], n: int, parts: List[bytes]) -> None:
    while n > 0:
        chunk = read(min(n, _CHUNK))
        if not chunk:
            raise EOFError("the stream ended inside a value (no STOP)")
        parts.append(chunk)
        n -= len(chunk)


def read_value(
    file: BinaryIO,
    py2str_as_py3str: bool,
    py3str_as_py2str: bool,
    hook: Optional[ChannelHook],
) -> Any:
    """Read one dumped value (version byte to STOP) from file and decode it."""
    read = file.read
    first = read(1)
    if not first:
        raise EOFError("the stream is at its end: no value to load")
    if first != VERSION_BYTE:
        raise LoadError(f"wrong format version {first!r} at offset 0 (expected {VERSION_BYTE!r})")
    parts: List[bytes] = [first]
    offset = 1
    while True:
        op = read(1)
        if not op:
            raise EOFError("the stream ended inside a value (no STOP)")
        payload = _PAYLOAD.get(op[0])
        if payload is None:
            raise LoadError(f"unknown opcode {op!r} at offset {offset}")
        parts.append(op)
        size, counted = payload
        start = len(parts)
        _read_exactly(read, size, parts)
        if counted:
            (length,) = struct.unpack(">i", b"".join(parts[start:]))
            if length < 0:
                raise LoadError(f"{NAMES[op[0]]} at offset {offset}: negative length {length}")
            _read_exactly(read, length, parts)
            size += length
        offset += 1 + size
        if op == b"Q":
            break
    data = b"".join(parts)
    return decode(data, 1, len(data), py2str_as_py3str, py3str_as_py2str, hook)
