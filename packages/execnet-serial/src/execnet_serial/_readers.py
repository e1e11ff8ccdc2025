"""The opcodes the decoder's loop hands off, by family: what each reads and checks.

Each reader takes the data, the position just after its opcode and the stack, pushes
the one value it builds and returns the position after its payload. A reader checks
every length and count it reads before it builds anything, and fails with one of the
small exceptions below (or the TypeError/ValueError/struct.error of the operation that
failed); the loop turns any of them into a LoadError naming the opcode and its offset
(``_decoder._load_error``). The loop itself reads the frequent members of these
families inline: PY3STRING (a byte string), INT and FLOAT (fixed-size numbers),
BUILDTUPLE of 2 or 3 items, NONE/TRUE/FALSE, NEWDICT/NEWLIST/SETITEM and STOP.
"""

from __future__ import annotations

import struct
import sys

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional

    from ._hook import ChannelHook

__all__ = [
    "HASHED_TUPLE_DEPTH_LIMIT",
    "Refused",
    "TooFew",
    "Truncated",
    "build_set",
    "build_tuple",
    "check_hashable",
    "read_byte_string",
    "read_channel",
    "read_int_list",
    "read_number",
]

unpack_i = struct.Struct(">i").unpack_from
unpack_d = struct.Struct(">d").unpack_from
_unpack_dd = struct.Struct(">dd").unpack_from

# Hashing nests C calls per tuple level: 1,000 levels need well under 100 KiB of stack.
HASHED_TUPLE_DEPTH_LIMIT = 1000
_get_int_max_str_digits: Optional[Callable[[], int]] = getattr(sys, "get_int_max_str_digits", None)


class Truncated(Exception):
    """A declared length that is negative or runs past the payload's end (args: the length)."""


class TooFew(Exception):
    """A count beyond the values on the stack, or negative (args: count, stack size)."""


class Refused(Exception):
    """Valid-looking bytes this decoder will not build (args: the reason)."""


# -- byte strings: an int4 length, then that many bytes ------------------------------


def read_byte_string(  # noqa: PLR0917 - positional: one call per opcode
    op: int, data: bytes, pos: int, end: int, stack: List[Any], py2str_as_py3str: bool
) -> int:
    """BYTES, PY2STRING, UNICODE, LONGINT and LONGLONG (PY3STRING is the loop's own)."""
    n: int = unpack_i(data, pos)[0]
    start = pos + 4
    stop = start + n
    if n < 0 or stop > end:
        raise Truncated(n)
    if op == 65 or (op == 77 and not py2str_as_py3str):  # BYTES, PY2STRING as bytes
        stack.append(data[start:stop])
    elif op == 77:  # PY2STRING as str
        stack.append(data[start:stop].decode("latin-1"))
    elif op == 83:  # UNICODE
        stack.append(data[start:stop].decode("utf-8"))
    else:  # LONGINT, LONGLONG
        stack.append(_decimal(data, start, stop))
    return stop


def _decimal(data: bytes, start: int, stop: int) -> int:
    # The digit count is checked before int() sees them: converting is quadratic.
    limit = _get_int_max_str_digits() if _get_int_max_str_digits is not None else 4300
    if limit and stop - start > limit:
        raise ValueError(
            f"an int of {stop - start} decimal digits is beyond this interpreter's limit "
            f"of {limit} (sys.set_int_max_str_digits raises it)"
        )
    digits = data[start:stop]
    if not digits.isdigit() and not (digits[:1] == b"-" and digits[1:].isdigit()):
        raise ValueError(f"not a decimal integer: {digits[:40]!r}")
    return int(digits)


# -- fixed-size numbers ----------------------------------------------------------------


def read_number(op: int, data: bytes, pos: int, stack: List[Any]) -> int:
    """LONG (an int4 written by Python 2) and COMPLEX (two doubles); INT, FLOAT: the loop."""
    if op == 71:  # LONG
        stack.append(unpack_i(data, pos)[0])
        return pos + 4
    real, imag = _unpack_dd(data, pos)  # COMPLEX
    stack.append(complex(real, imag))
    return pos + 16


# -- collections of the top n stack items ---------------------------------------------


def build_tuple(stack: List[Any], n: int) -> None:
    """BUILDTUPLE of n items but 2 or 3 (which the loop pops itself)."""
    if n < 0 or n > len(stack):
        raise TooFew(n, len(stack))
    if n:
        items = tuple(stack[-n:])
        del stack[-n:]
        stack.append(items)
    else:
        stack.append(())


def build_set(op: int, data: bytes, pos: int, stack: List[Any], deep: bool) -> int:
    """SET or FROZENSET of the top n items. ``deep``: tuples nested deep enough to be
    refused as members may have been built (see ``check_hashable``)."""
    n = unpack_i(data, pos)[0]
    if n < 0 or n > len(stack):
        raise TooFew(n, len(stack))
    members = stack[len(stack) - n :]
    del stack[len(stack) - n :]
    if deep:
        for member in members:
            if type(member) is tuple:
                check_hashable(member)
    stack.append(set(members) if op == 79 else frozenset(members))
    return pos + 4


def check_hashable(key: tuple[Any, ...]) -> None:
    """ValueError for a tuple nested more than HASHED_TUPLE_DEPTH_LIMIT levels deep.

    Hashing a tuple recurses in C, once per level: a deep enough one overflows the
    stack (a crash, not an exception) when it becomes a dict key or set member.
    """
    todo: List[Any] = [(key, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > HASHED_TUPLE_DEPTH_LIMIT:
            raise ValueError(
                f"a tuple nested more than {HASHED_TUPLE_DEPTH_LIMIT} levels deep can't be "
                f"a dict key or set member (hashing it could overflow the C stack)"
            )
        todo.extend((sub, depth + 1) for sub in item if type(sub) is tuple)


# -- containers: a list of small ints as dumps writes it --------------------------------


def read_int_list(data: bytes, start: int, n: int) -> Optional[List[int]]:
    """The list of n ints at data[start:] if it is laid out exactly as dumps writes it,
    else None (the loop reads it opcode by opcode).

    Per item: F <index> F <value> P, 11 bytes; checked column by column with strided
    slices, so every byte of the 11 * n is compared before the list is built.
    """
    size = 11 * n
    body = data[start : start + size]
    if len(body) != size:
        return None
    f_column = b"F" * n
    if body[0::11] != f_column or body[5::11] != f_column or body[10::11] != b"P" * n:
        return None
    indices = struct.pack(f">{n}i", *range(n))
    values = bytearray(4 * n)
    for k in range(4):
        if body[1 + k :: 11] != indices[k::4]:
            return None
        values[k::4] = body[6 + k :: 11]
    return list(struct.unpack(f">{n}i", values))


# -- channels ------------------------------------------------------------------------------


def read_channel(data: bytes, pos: int, stack: List[Any], hook: Optional[ChannelHook]) -> int:
    """CHANNEL: the hook's channel of that id (its TypeError/ValueError: a LoadError)."""
    if hook is None:
        raise Refused("channels can only be loaded through a gateway")
    stack.append(hook.channel_from_id(unpack_i(data, pos)[0]))
    return pos + 4
