"""Pieces both encoders share: packers, pre-encoded headers, whole-list writers.

Indexing a list of pre-encoded headers costs a third of a struct call, and the
writers for lists of one scalar type do their per-item work in C (``map``, ``zip``,
strided slice assignment), so these are what make the encoders fast.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat

from ._errors import DumpError
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Iterator, List, Optional

    from ._hook import ChannelHook

INT4_MIN = -0x80000000
INT4_MAX = 0x7FFFFFFF

pack_ci = struct.Struct(">ci").pack  # opcode + int4
pack_cd = struct.Struct(">cd").pack  # FLOAT
pack_cdd = struct.Struct(">cdd").pack  # COMPLEX
from_iterable = chain.from_iterable


class Raw(bytes):
    """Already-encoded bytes placed between the items of a container.

    A private type, so user data can never be mistaken for it.
    """

    __slots__ = ()


SETITEM = Raw(b"P")
EMPTY_LIST = b"K\x00\x00\x00\x00"
FIRST_INDEX = b"F\x00\x00\x00\x00"

# Built with map() so that importing (which every remote interpreter does at bootstrap)
# stays well under a millisecond.
CACHED = 1024
STR_HEADS: List[bytes] = list(map(pack_ci, repeat(b"N", CACHED), range(CACHED)))
TUPLE_CLOSERS: List[bytes] = list(map(pack_ci, repeat(b"@", CACHED), range(CACHED)))
SMALL_INT_OFFSET = 256
SMALL_INTS: List[bytes] = list(map(pack_ci, repeat(b"F"), range(-SMALL_INT_OFFSET, CACHED)))

# INDICES[i]: the INT opcode of list index i. SEPARATORS[i] (i >= 1): SETITEM for item
# i-1, then the index of item i. Shared by every list up to this length; longer lists
# make theirs on the fly.
SEPARATORS_CACHED = CACHED
INDICES: List[bytes] = list(map(pack_ci, repeat(b"F", SEPARATORS_CACHED), range(SEPARATORS_CACHED)))
_separators: Optional[List[Raw]] = None  # made on first use: a remote's start skips it


def _cached_separators() -> List[Raw]:
    global _separators
    if _separators is None:
        _separators = list(map(Raw, map(b"P".__add__, INDICES)))
    return _separators


def separator(index: int) -> Raw:
    return Raw(b"P" + pack_ci(b"F", index))


def list_separators(n: int) -> Iterator[Raw]:
    """What follows each of n list items: SETITEM and the next index (the last: SETITEM)."""
    separators = _separators or _cached_separators()
    if n <= SEPARATORS_CACHED:
        return chain(separators[1:n], (SETITEM,))
    return chain(separators[1:], map(separator, range(SEPARATORS_CACHED, n)), (SETITEM,))


def long_int(x: int) -> bytes:
    """LONGINT: decimal digits, for ints beyond int4 (negative ones too)."""
    try:
        digits = str(x).encode("ascii")
    except ValueError as exc:  # beyond sys.get_int_max_str_digits()
        raise DumpError(
            f"can't serialize an int of more decimal digits than the interpreter's limit "
            f"(sys.set_int_max_str_digits raises it): {exc}"
        ) from None
    return pack_ci(b"H", len(digits)) + digits


HOMOGENEOUS_MIN = 8  # below this, checking the item types costs more than it saves


def write_scalar_list(x: List[object], parts: List[bytes], hook: Optional[ChannelHook]) -> bool:
    """Append the whole encoding of list x if its items are all of one scalar type
    with a fast writer (int within int4, str, float); False if not (nothing written).
    A whole-container writer (see ``_encoder``): ``hook`` is not needed.
    """
    n = len(x)
    types = set(map(type, x))
    if len(types) != 1:
        return False
    item_type = types.pop()
    if item_type is int:
        body = _small_int_list(x, n)
        if body is None:
            return False
        parts.append(body)
        return True
    if item_type is str:
        try:
            encoded = list(map(str.encode, x))  # type: ignore[arg-type]
            heads = list(map(pack_ci, repeat(b"N", n), map(len, encoded)))
        except (UnicodeEncodeError, struct.error):
            return False  # the item-by-item path raises the precise DumpError
        parts.append(pack_ci(b"K", n))
        parts.append(FIRST_INDEX)
        parts.extend(from_iterable(zip(heads, encoded, list_separators(n))))
        return True
    if item_type is float:
        parts.append(pack_ci(b"K", n))
        parts.append(FIRST_INDEX)
        floats = map(pack_cd, repeat(b"D", n), x)
        parts.extend(from_iterable(zip(floats, list_separators(n))))
        return True
    return False


def _small_int_list(x: List[object], n: int) -> Optional[bytes]:
    """The whole encoding of a list of ints that all fit int4, or None."""
    try:
        values = struct.pack(f">{n}i", *x)
    except struct.error:
        return None
    indices = struct.pack(f">{n}i", *range(n))
    # Per item: F <index:4> F <value:4> P = 11 bytes, laid out with strided slices.
    body = bytearray(5 + 11 * n)
    body[0:5] = pack_ci(b"K", n)
    f_column = b"F" * n
    body[5::11] = f_column
    body[10::11] = f_column
    body[15::11] = b"P" * n
    for k in range(4):
        body[6 + k :: 11] = indices[k::4]
        body[11 + k :: 11] = values[k::4]
    return bytes(body)
