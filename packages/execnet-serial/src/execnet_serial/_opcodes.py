"""The opcodes of the format (see the README's table) and the version byte."""

from __future__ import annotations

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Dict, Final

VERSION: Final = 2
VERSION_BYTE: Final = b"\x02"
INT4_MIN: Final = -0x80000000
INT4_MAX: Final = 0x7FFFFFFF

BUILDTUPLE: Final = b"@"
BYTES: Final = b"A"
CHANNEL: Final = b"B"
FALSE: Final = b"C"
FLOAT: Final = b"D"
FROZENSET: Final = b"E"
INT: Final = b"F"
LONG: Final = b"G"
LONGINT: Final = b"H"
LONGLONG: Final = b"I"
NEWDICT: Final = b"J"
NEWLIST: Final = b"K"
NONE: Final = b"L"
PY2STRING: Final = b"M"
PY3STRING: Final = b"N"
SET: Final = b"O"
SETITEM: Final = b"P"
STOP: Final = b"Q"
TRUE: Final = b"R"
UNICODE: Final = b"S"
COMPLEX: Final = b"T"

NAMES: Final[Dict[int, str]] = {
    value[0]: name
    for name, value in list(globals().items())
    if name.isupper() and isinstance(value, bytes) and len(value) == 1 and name != "VERSION_BYTE"
}
