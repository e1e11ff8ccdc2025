"""The opcode stream to values.

Goals: accept everything execnet 2.x and Python 2 writers produce; on hostile input
raise only LoadError naming the opcode and its offset, never allocate much more than
the input's size, never recurse, never hang; and be fast in pure Python. The plan:

- one loop with the opcodes tested in order of frequency, state in local variables;
- every declared length is checked against the bytes actually present before anything
  is built (a string needs n bytes left, a tuple n stack items, NEWLIST n bytes left,
  and all NEWLISTs together no more items than the input has bytes);
- ``pos`` only moves past an opcode once it has been applied, so when anything inside
  fails, the failing opcode sits at ``pos - 1`` and one handler turns the low-level
  exception into a LoadError there;
- a list of small ints (the exact bytes ``dumps`` writes for one) is recognised after
  NEWLIST and decoded with strided slices and one ``struct.unpack``;
- runs of dict or list entries laid out byte for byte alike (same opcodes, same string
  lengths: rows of scalars or flat tuples of scalars) are decoded many at a time after
  NEWLIST (8+ items, 512+ bytes left) or NEWDICT (16 KiB+ left) by ``_records.fill``;
- the entries of a list of 128+ items or a dict in 16 KiB+ that come in a few shapes
  (records with strings of any length and nested containers, such as test reports)
  are decoded column by column by ``_shapes.fill_shapes``;
- both check every opcode and length byte of an entry before applying it, build nothing
  they have not checked, apply a batch whole or not at all, count tuples and the list
  budget as this loop does, and leave the rest to this loop, so the outcome (errors
  included) is the loop's own; after two containers where they found nothing, they are
  not tried again in this payload;
- in a payload of 512+ bytes, after 32 strings, the data is read once as latin-1 text
  too, so an ASCII string is a single slice (offsets stay byte offsets);
- BUILDTUPLE of 2 or 3 items (records) pops them instead of slicing the stack;
- hashing a tuple nested thousands of levels deep recurses in C and can overflow the
  stack, so once enough tuples were built to allow that, tuples used as dict keys or set
  members have their depth checked first.
"""

from __future__ import annotations

import struct
import sys

from ._errors import LoadError
from ._opcodes import NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

    from ._hook import ChannelHook

__all__ = ["as_bytes", "decode", "loads_payload"]

_unpack_i = struct.Struct(">i").unpack_from
_unpack_d = struct.Struct(">d").unpack_from
_unpack_dd = struct.Struct(">dd").unpack_from

# Hashing nests C calls per tuple level: 1,000 levels need well under 100 KiB of stack.
HASHED_TUPLE_DEPTH_LIMIT = 1000
_INT_LIST_MIN = 8
_TEXT_MIN = 512
_TEXT_AFTER = 32
_TEXT_AT_ONCE_MAX = 16 * 1024
_STRING_OPS = (65, 77, 78, 83)  # BYTES, PY2STRING, PY3STRING, UNICODE
# A dict's size is unknown at NEWDICT: only look for runs where a failed look (a few
# microseconds) is small against the payload (a single report dict is not worth it).
_FILL_DICT_MIN_BYTES = 16 * 1024
# Below this many bytes left, a list is too small to be worth a look (NEWLIST).
FILL_MIN_BYTES = 512
# Learning a record shape (_shapes) costs about as much as decoding ten records here,
# and saves about half of each record's cost after that: shorter lists are left to the
# loop (and to _records, which learns from one entry).
SHAPES_MIN_ITEMS = 128
_FILL_PRODUCTIVE = 1024
_get_int_max_str_digits: Optional[Callable[[], int]] = getattr(sys, "get_int_max_str_digits", None)


class _Truncated(Exception):
    """A payload runs past the end of the data (turned into LoadError by decode)."""


def _check_hashed_tuple(key: tuple[Any, ...]) -> None:
    todo: List[Any] = [(key, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > HASHED_TUPLE_DEPTH_LIMIT:
            raise ValueError(
                f"a tuple nested more than {HASHED_TUPLE_DEPTH_LIMIT} levels deep can't be "
                f"a dict key or set member (hashing it could overflow the C stack)"
            )
        todo.extend((sub, depth + 1) for sub in item if type(sub) is tuple)


def _decimal(data: bytes, start: int, stop: int) -> int:
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


def decode(  # noqa: PLR0917 - positional: called once per message
    data: bytes,
    pos: int,
    end: int,
    py2str_as_py3str: bool,
    py3str_as_py2str: bool,
    hook: Optional[ChannelHook],
) -> Any:
    """The value encoded in ``data[pos:end]``, which must end with its STOP.

    ``end`` may be short of ``len(data)`` (many frames in one chunk): a payload that
    claims more than ``end`` is truncated; an opcode read past ``end`` (corrupt data
    running into what follows) is caught at STOP, which must sit at ``end - 1``.
    """
    stack: List[Any] = []
    push = stack.append
    pop = stack.pop
    unpack_i = _unpack_i
    unpack_d = _unpack_d
    tuples = 0
    # Lists are allocated whole at NEWLIST; a real list of n items takes 11 or more bytes
    # per item, so all lists together may declare at most as many items as there are
    # bytes (else many NEWLISTs of a large n would allocate quadratically).
    list_budget = end - pos
    # A payload with many strings is also read as latin-1 text (offsets stay byte
    # offsets): an ASCII string is then one slice of it instead of a bytes slice and a
    # decode. At once for a payload of up to 16 KiB that does not start with a string or
    # bytes (a record: the copy costs less than a string); else only once _TEXT_AFTER
    # strings were read, so a payload of a few big strings or bytes is not copied once
    # more. Only when the payload is most of data (a chunk of many frames is not
    # decoded per frame).
    text: Optional[str] = None
    text_after = 0
    if list_budget >= _TEXT_MIN and 2 * list_budget >= len(data) and not py3str_as_py2str:
        if list_budget <= _TEXT_AT_ONCE_MAX and data[pos] not in _STRING_OPS:
            text = data.decode("latin-1")
        else:
            text_after = _TEXT_AFTER
    tuple_limit = HASHED_TUPLE_DEPTH_LIMIT
    fills = 2  # looks for runs that read less than _FILL_PRODUCTIVE bytes allowed
    op = -1
    try:
        while True:
            op = data[pos]
            pos += 1
            if op == 78:  # PY3STRING
                n = unpack_i(data, pos)[0]
                start = pos + 4
                stop = start + n
                if n < 0 or stop > end:
                    raise _Truncated(n)
                if text is not None:
                    s = text[start:stop]
                    push(s if s.isascii() else data[start:stop].decode("utf-8"))
                elif py3str_as_py2str:
                    push(data[start:stop])
                else:
                    push(data[start:stop].decode("utf-8"))
                    if text_after:
                        text_after -= 1
                        if not text_after:
                            text = data.decode("latin-1")
                pos = stop
            elif op == 80:  # SETITEM
                value = pop()
                key = pop()
                if tuples > tuple_limit and type(key) is tuple:
                    _check_hashed_tuple(key)
                stack[-1][key] = value
            elif op == 70:  # INT
                push(unpack_i(data, pos)[0])
                pos += 4
            elif op == 76:  # NONE
                push(None)
            elif op == 68:  # FLOAT
                push(unpack_d(data, pos)[0])
                pos += 8
            elif op == 64:  # BUILDTUPLE
                n = unpack_i(data, pos)[0]
                if n == 3 and len(stack) >= 3:
                    c = pop()
                    b = pop()
                    push((pop(), b, c))
                    tuples += 1
                elif n == 2 and len(stack) >= 2:
                    b = pop()
                    push((pop(), b))
                    tuples += 1
                elif n < 0 or n > len(stack):
                    raise _too_few(op, pos - 1, n, len(stack))
                elif n:
                    items = tuple(stack[-n:])
                    del stack[-n:]
                    push(items)
                    tuples += 1
                else:
                    push(())
                pos += 4
            elif op == 74:  # NEWDICT
                if fills and end - pos >= _FILL_DICT_MIN_BYTES:
                    new_dict: Dict[Any, Any] = {}
                    push(new_dict)
                    start = pos
                    pos, built, declared = _bulk(
                        data, pos, end, new_dict, py3str_as_py2str, list_budget
                    )
                    tuples += built
                    list_budget -= declared
                    if pos - start < _FILL_PRODUCTIVE:
                        fills -= 1
                else:
                    push({})
            elif op == 75:  # NEWLIST
                n = unpack_i(data, pos)[0]
                start = pos + 4
                if n < 0 or n > end - start:
                    raise _Truncated(n)
                if n > list_budget:
                    raise LoadError(
                        f"NEWLIST at offset {pos - 1}: {n} items, while the lists before it "
                        f"already declared more items than the input could fill"
                    )
                list_budget -= n
                if n >= _INT_LIST_MIN and data[start + 5 : start + 6] == b"F":
                    values = _int_list(data, start, n)
                    if values is not None:
                        push(values)
                        pos = start + 11 * n
                        continue
                new_list: List[Any] = [None] * n
                push(new_list)
                pos = start
                if n >= _INT_LIST_MIN and fills and end - pos >= FILL_MIN_BYTES:
                    pos, built, declared = _bulk(
                        data, pos, end, new_list, py3str_as_py2str, list_budget
                    )
                    tuples += built
                    list_budget -= declared
                    if pos - start < _FILL_PRODUCTIVE:
                        fills -= 1
            elif op == 82:  # TRUE
                push(True)
            elif op == 67:  # FALSE
                push(False)
            elif op in (65, 77):  # BYTES, PY2STRING
                n = _unpack_i(data, pos)[0]
                start = pos + 4
                stop = start + n
                if n < 0 or stop > end:
                    raise _Truncated(n)
                if op == 77 and py2str_as_py3str:
                    push(data[start:stop].decode("latin-1"))
                else:
                    push(data[start:stop])
                pos = stop
            elif op == 81:  # STOP
                if len(stack) != 1:
                    raise LoadError(
                        f"STOP at offset {pos - 1} with {len(stack)} values on the stack "
                        f"(must be exactly 1)"
                    )
                if pos != end:
                    if pos > end:
                        raise LoadError(f"STOP at offset {pos - 1} is past the payload's end")
                    raise LoadError(f"{end - pos} bytes after STOP at offset {pos - 1}")
                return stack[0]
            elif op == 83:  # UNICODE (Python 2)
                n = _unpack_i(data, pos)[0]
                start = pos + 4
                stop = start + n
                if n < 0 or stop > end:
                    raise _Truncated(n)
                push(data[start:stop].decode("utf-8"))
                pos = stop
            elif op in (79, 69):  # SET, FROZENSET
                n = _unpack_i(data, pos)[0]
                if n < 0 or n > len(stack):
                    raise _too_few(op, pos - 1, n, len(stack))
                members = stack[len(stack) - n :]
                del stack[len(stack) - n :]
                if tuples > HASHED_TUPLE_DEPTH_LIMIT:
                    for member in members:
                        if type(member) is tuple:
                            _check_hashed_tuple(member)
                push(set(members) if op == 79 else frozenset(members))
                pos += 4
            elif op == 71:  # LONG (Python 2)
                push(_unpack_i(data, pos)[0])
                pos += 4
            elif op in (72, 73):  # LONGINT, LONGLONG (Python 2)
                n = _unpack_i(data, pos)[0]
                start = pos + 4
                stop = start + n
                if n < 0 or stop > end:
                    raise _Truncated(n)
                push(_decimal(data, start, stop))
                pos = stop
            elif op == 84:  # COMPLEX
                real, imag = _unpack_dd(data, pos)
                push(complex(real, imag))
                pos += 16
            elif op == 66:  # CHANNEL
                if hook is None:
                    raise LoadError(
                        f"CHANNEL at offset {pos - 1}: channels can only be loaded "
                        f"through a gateway"
                    )
                push(hook.channel_from_id(_unpack_i(data, pos)[0]))
                pos += 4
            else:
                raise LoadError(f"unknown opcode {bytes([op])!r} at offset {pos - 1}")
    except LoadError:
        raise
    except _Truncated as exc:
        raise LoadError(
            _describe(op, pos - 1, f"declares length {exc}, {end - pos - 4} bytes follow")
        ) from None
    except struct.error:
        raise LoadError(_describe(op, pos - 1, f"payload runs past the end ({end})")) from None
    except IndexError as exc:
        if pos >= end:
            raise LoadError(f"data ends at offset {end} before STOP") from None
        if "assignment" in str(exc):  # SETITEM with an index beyond the list
            raise LoadError(_describe(op, pos - 1, f"IndexError: {exc}")) from None
        raise LoadError(_describe(op, pos - 1, "too few values on the stack")) from None
    except (TypeError, ValueError, KeyError, RecursionError, OverflowError) as exc:
        raise LoadError(_describe(op, pos - 1, f"{type(exc).__name__}: {exc}")) from None


def _bulk(  # noqa: PLR0917 - positional: the loop's own helper
    data: bytes,
    pos: int,
    end: int,
    container: Union[Dict[Any, Any], List[Any]],
    raw: bool,
    budget: int,
) -> Tuple[int, int, int]:
    """The bulk readers, in turn, on the container just made at pos: where they stopped,
    the tuples and list items they built. Imported on first use: a remote's start (which
    imports this module) skips them and what they import."""
    from ._records import fill
    from ._shapes import fill_shapes

    pos, tuples = fill(data, pos, end, container, raw)
    if type(container) is list and len(container) < SHAPES_MIN_ITEMS:
        return pos, tuples, 0
    pos, built, declared = fill_shapes(data, pos, end, container, raw, budget)
    return pos, tuples + built, declared


def _int_list(data: bytes, start: int, n: int) -> Optional[List[int]]:
    """The list of n ints at data[start:] if it is laid out exactly as dumps writes it.

    Per item: F <index> F <value> P, 11 bytes; checked column by column.
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


def _describe(op: int, offset: int, what: str) -> str:
    name = NAMES.get(op, repr(bytes([op & 0xFF])))
    return f"{name} at offset {offset}: {what}"


def _too_few(op: int, offset: int, n: int, have: int) -> LoadError:
    return LoadError(_describe(op, offset, f"needs {n} values, the stack holds {have}"))


def loads_payload(
    data: Union[bytes, bytearray, memoryview],
    *,
    py2str_as_py3str: bool = False,
    py3str_as_py2str: bool = False,
    hook: Optional[ChannelHook] = None,
    start: int = 0,
    end: Optional[int] = None,
) -> Any:
    """The value of an opcode stream without the version byte (a channel message).

    ``hook.channel_from_id(id)`` gives the value of a CHANNEL opcode; without a hook
    CHANNEL is a LoadError. ``start``/``end`` select the payload inside ``data`` (many
    frames read in one chunk decode where they are, with no copy per message).

    >>> loads_payload(b"K\\x00\\x00\\x00\\x01F\\x00\\x00\\x00\\x00LPQ")
    [None]
    >>> loads_payload(b"..N\\x00\\x00\\x00\\x02hiQ..", start=2, end=10)
    'hi'
    """
    if type(data) is not bytes:
        if isinstance(data, (bytearray, memoryview)):
            size = data.nbytes if isinstance(data, memoryview) else len(data)
            stop = size if end is None else end
            if stop - start >= _WHOLE_MIN and start >= 0 and stop <= size:
                value = _whole_string(data, start, stop, py3str_as_py2str)
                if value is not None:
                    return value
        data = as_bytes(data)  # TypeError for what is not bytes-like
    if end is None:
        end = len(data)
    if not 0 <= start <= end <= len(data):
        raise LoadError(f"payload bounds {start}:{end} outside the {len(data)} bytes given")
    return decode(data, start, end, py2str_as_py3str, py3str_as_py2str, hook)


# A payload holding one bytes or str value (a big item, the usual bulk message) is
# decoded straight from the caller's buffer: one copy instead of two.
_WHOLE_MIN = 1024


def _whole_string(data: object, start: int, end: int, py3str_as_py2str: bool) -> Any:
    """The bytes or str that is all of ``data[start:end]``, or None if it is not one."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        return None  # as_bytes names the wrong type
    if view.format != "B" or view.ndim != 1 or not view.contiguous:
        return None
    op = view[start]
    if op not in (65, 78) or view[end - 1] != 81:  # BYTES or PY3STRING ... STOP
        return None
    if _unpack_i(view, start + 1)[0] != end - start - 6:
        return None
    body = view[start + 5 : end - 1]
    if op == 65 or py3str_as_py2str:
        return bytes(body)
    try:
        return str(body, "utf-8")
    except UnicodeDecodeError:
        return None  # the general path reports it


def as_bytes(data: Union[bytes, bytearray, memoryview]) -> bytes:
    """data as bytes (one copy for bytearray or memoryview); TypeError for other types."""
    if type(data) is bytes:
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, bytearray or memoryview, got {type(data)!r}")
    return bytes(data)
