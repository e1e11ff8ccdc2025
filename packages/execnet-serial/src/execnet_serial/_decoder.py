"""The opcode stream to values: the loop, its error handling, and loads_payload.

Goals: accept everything execnet 2.x and Python 2 writers produce; on hostile input
raise only LoadError naming the opcode and its offset, never allocate much more than
the input's size, never recurse, never hang; and be fast in pure Python.

Where each opcode is read (the README's table lists them all):

=====================================  ====================================  ==========
family                                 opcodes                               read by
=====================================  ====================================  ==========
byte strings (int4 length, bytes)      PY3STRING                             ``decode``
                                       BYTES PY2STRING UNICODE LONGINT       ``_readers``
                                       LONGLONG
fixed-size numbers                     INT FLOAT                             ``decode``
                                       LONG COMPLEX                          ``_readers``
constants                              NONE TRUE FALSE                       ``decode``
collections of the top n stack items   BUILDTUPLE of 2 or 3                  ``decode``
                                       BUILDTUPLE of other n, SET FROZENSET  ``_readers``
containers filled by SETITEM           NEWDICT NEWLIST SETITEM               ``decode``
                                       (their bulk readers)                  ``_bulk``
channels                               CHANNEL                               ``_readers``
end                                    STOP                                  ``decode``
=====================================  ====================================  ==========

The loop reads the frequent opcodes itself, tested in order of frequency with its
state in local variables: reading INT through a call instead makes a tuple of 1,000
ints load a fifth slower (CPython 3.11), and small messages pay the same per opcode.
Its rules, which the readers in ``_readers`` and ``_bulk`` follow too:

- every declared length is checked against the bytes actually present before anything
  is built (a string needs n bytes left, a tuple or set n stack items, NEWLIST n bytes
  left, and all NEWLISTs together no more items than the input has bytes);
- ``pos`` only moves past an opcode once it has been applied, so when anything inside
  fails, the failing opcode sits at ``pos - 1`` and ``_load_error`` turns the exception
  into a LoadError naming it and that offset;
- hashing a tuple nested thousands of levels deep recurses in C and can overflow the
  stack, so once enough tuples were built to allow that, tuples used as dict keys or set
  members have their depth checked first;
- in a payload of 512+ bytes the data is also read as latin-1 text, so an ASCII string
  is a single slice of it (offsets stay byte offsets): at once for a payload of up to
  16 KiB that does not start with a string or bytes (a record: the copy costs less
  than a string), else once 32 strings were read (a payload of a few big strings or
  bytes is not copied once more); never for a payload that is less than half of
  ``data`` (a chunk of many frames is not copied per frame);
- a list of 8+ ints laid out as ``dumps`` writes it is read whole
  (``_readers.read_int_list``); after NEWLIST (8+ items, 512+ bytes left) or NEWDICT
  (16 KiB+ left) the bulk readers (``_bulk``) may read many entries at once, leaving
  the rest to the loop; after two looks that read less than 1 KiB they are not tried
  again in this payload.
"""

from __future__ import annotations

import struct

from ._errors import LoadError
from ._opcodes import NAMES
from ._readers import (
    HASHED_TUPLE_DEPTH_LIMIT,
    Refused,
    TooFew,
    Truncated,
    build_set,
    build_tuple,
    check_hashable,
    read_byte_string,
    read_channel,
    read_int_list,
    read_number,
)
from ._readers import unpack_d as _unpack_d
from ._readers import unpack_i as _unpack_i
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

    from ._hook import ChannelHook

__all__ = ["as_bytes", "decode", "loads_payload"]

INT_LIST_MIN = 8
TEXT_MIN = 512
TEXT_AFTER = 32
_TEXT_AT_ONCE_MAX = 16 * 1024
_STRING_OPS = (65, 77, 78, 83)  # BYTES, PY2STRING, PY3STRING, UNICODE
# A dict's size is unknown at NEWDICT: only look for runs where a failed look (a few
# microseconds) is small against the payload (a single report dict is not worth it).
BULK_DICT_MIN_BYTES = 16 * 1024
# Below this many bytes left, a list is too small to be worth a look (NEWLIST).
BULK_LIST_MIN_BYTES = 512
_BULK_PRODUCTIVE = 1024  # a look that reads less counts as failed
_BULK_LOOKS = 2
_OVER_BUDGET = "while the lists before it already declared more items than the input could fill"


def decode(  # noqa: PLR0917 - positional: called once per message
    data: bytes,
    pos: int,
    end: int,
    py2str_as_py3str: bool,
    py3str_as_py2str: bool,
    hook: Optional[ChannelHook],
) -> Any:
    """The value of the payload at ``data[pos:end]``, which must end with its STOP.

    Exported as ``execnet_serial.loads_payload_at``: ``loads_payload`` without its
    argument checks and conversions, every argument positional, for a reader of many
    payloads in one bytes (the channel layer's receive loop: one call per message).
    ``data`` must be ``bytes`` and ``0 <= pos <= end <= len(data)``; ``hook`` is a
    ChannelHook or None. Raises what ``loads_payload`` raises.

    >>> decode(b"..N\\x00\\x00\\x00\\x02hiQ..", 2, 10, False, False, None)
    'hi'

    ``end`` may be short of ``len(data)`` (many frames in one chunk): a payload that
    claims more than ``end`` is truncated; an opcode read past ``end`` (corrupt data
    running into what follows) is caught at STOP, which must sit at ``end - 1``.
    Long on purpose: the frequent opcodes are read here, with no call per opcode (see
    the module's docstring).
    """
    stack: List[Any] = []
    push = stack.append
    pop = stack.pop
    unpack_i = _unpack_i
    unpack_d = _unpack_d
    tuples = 0  # built so far: past depth_limit, tuples to be hashed are checked
    depth_limit = HASHED_TUPLE_DEPTH_LIMIT
    budget = end - pos  # list items all NEWLISTs may still declare
    looks = _BULK_LOOKS
    text, text_after = (
        _text_plan(data, pos, end, py3str_as_py2str) if end - pos >= TEXT_MIN else _NO_TEXT
    )
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
                    raise Truncated(n)
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
                if tuples > depth_limit and type(key) is tuple:
                    check_hashable(key)
                stack[-1][key] = value
            elif op == 70:  # INT
                push(unpack_i(data, pos)[0])
                pos += 4
            elif op == 76:  # NONE
                push(None)
            elif op == 68:  # FLOAT
                push(unpack_d(data, pos)[0])
                pos += 8
            elif op == 64:  # BUILDTUPLE: records are 2- and 3-tuples, popped here
                n = unpack_i(data, pos)[0]
                if n == 3 and len(stack) >= 3:
                    c = pop()
                    b = pop()
                    push((pop(), b, c))
                elif n == 2 and len(stack) >= 2:
                    b = pop()
                    push((pop(), b))
                else:
                    build_tuple(stack, n)
                tuples += 1
                pos += 4
            elif op == 74:  # NEWDICT
                new_dict: Dict[Any, Any] = {}
                push(new_dict)
                if looks and end - pos >= BULK_DICT_MIN_BYTES:
                    pos, tuples, budget, looks = _bulk(
                        data, pos, end, new_dict, py3str_as_py2str, tuples, budget, looks
                    )
            elif op == 75:  # NEWLIST
                n = unpack_i(data, pos)[0]
                start = pos + 4
                if n < 0 or n > end - start:
                    raise Truncated(n)
                if n > budget:
                    raise Refused(f"{n} items, {_OVER_BUDGET}")
                budget -= n
                if n >= INT_LIST_MIN and data[start + 5] == 70:  # F <index> F <value> P?
                    ints = read_int_list(data, start, n)
                    if ints is not None:
                        push(ints)
                        pos = start + 11 * n
                        continue
                new_list: List[Any] = [None] * n
                push(new_list)
                pos = start
                if n >= INT_LIST_MIN and looks and end - pos >= BULK_LIST_MIN_BYTES:
                    pos, tuples, budget, looks = _bulk(
                        data, pos, end, new_list, py3str_as_py2str, tuples, budget, looks
                    )
            elif op == 82:  # TRUE
                push(True)
            elif op == 67:  # FALSE
                push(False)
            elif op == 81:  # STOP
                if len(stack) == 1 and pos == end:
                    return stack[0]
                raise _stop_error(stack, pos, end)
            else:
                pos = _read_other(op, data, pos, end, stack, py2str_as_py3str, hook, tuples)
    except Exception as exc:
        error = _load_error(exc, op, pos, end)
        if error is exc:
            raise  # a LoadError already, or not about the bytes: unchanged
        raise error from None


def _read_other(  # noqa: PLR0917 - positional: the loop's own helper
    op: int,
    data: bytes,
    pos: int,
    end: int,
    stack: List[Any],
    py2str_as_py3str: bool,
    hook: Optional[ChannelHook],
    tuples: int,
) -> int:
    """The opcodes the loop does not read itself, to their family's reader."""
    if op in (65, 77, 83, 72, 73):  # BYTES, PY2STRING, UNICODE, LONGINT, LONGLONG
        return read_byte_string(op, data, pos, end, stack, py2str_as_py3str)
    if op in (79, 69):  # SET, FROZENSET
        return build_set(op, data, pos, stack, tuples > HASHED_TUPLE_DEPTH_LIMIT)
    if op in (71, 84):  # LONG, COMPLEX
        return read_number(op, data, pos, stack)
    if op == 66:  # CHANNEL
        return read_channel(data, pos, stack, hook)
    raise LoadError(f"unknown opcode {bytes([op])!r} at offset {pos - 1}")


def _stop_error(stack: List[Any], pos: int, end: int) -> LoadError:
    """Why the STOP at ``pos - 1`` does not end the value: STOP must leave exactly one
    value on the stack and be the payload's last byte."""
    if len(stack) != 1:
        return LoadError(
            f"STOP at offset {pos - 1} with {len(stack)} values on the stack (must be exactly 1)"
        )
    if pos > end:
        return LoadError(f"STOP at offset {pos - 1} is past the payload's end")
    return LoadError(f"{end - pos} bytes after STOP at offset {pos - 1}")


def _load_error(exc: Exception, op: int, pos: int, end: int) -> Exception:
    """The LoadError for what went wrong at the opcode at ``pos - 1``.

    Anything else (a LoadError already, an exception of the channel hook's own other
    than TypeError/ValueError, a MemoryError) is returned as it is, to be raised
    unchanged.
    """
    if isinstance(exc, Truncated):
        what = f"declares length {exc.args[0]}, {end - pos - 4} bytes follow"
    elif isinstance(exc, TooFew):
        what = f"needs {exc.args[0]} values, the stack holds {exc.args[1]}"
    elif isinstance(exc, Refused):
        what = exc.args[0]
    elif isinstance(exc, struct.error):
        what = f"payload runs past the end ({end})"
    elif isinstance(exc, IndexError):
        if pos >= end:  # the opcode itself was read past the end
            return LoadError(f"data ends at offset {end} before STOP")
        # SETITEM on a list with an index beyond it, else a pop from an empty stack
        what = f"IndexError: {exc}" if "assignment" in str(exc) else "too few values on the stack"
    elif isinstance(exc, (TypeError, ValueError, KeyError, RecursionError, OverflowError)):
        what = f"{type(exc).__name__}: {exc}"
    else:
        return exc
    name = NAMES.get(op, repr(bytes([op & 0xFF])))
    return LoadError(f"{name} at offset {pos - 1}: {what}")


def _text_plan(data: bytes, pos: int, end: int, raw: bool) -> Tuple[Optional[str], int]:
    """The latin-1 text of ``data`` now, or after how many strings to make it (0: never)."""
    size = end - pos
    if size < TEXT_MIN or 2 * size < len(data) or raw:
        return _NO_TEXT
    if size <= _TEXT_AT_ONCE_MAX and data[pos] not in _STRING_OPS:
        return data.decode("latin-1"), 0
    return None, TEXT_AFTER


_NO_TEXT: Tuple[Optional[str], int] = (None, 0)


def _bulk(  # noqa: PLR0917 - positional: the loop's own helper
    data: bytes,
    pos: int,
    end: int,
    container: Union[Dict[Any, Any], List[Any]],
    raw: bool,
    tuples: int,
    budget: int,
    looks: int,
) -> Tuple[int, int, int, int]:
    """Let the bulk readers read entries of the container just made at ``pos``: the
    loop's new position, tuple count, list budget and looks left. They are imported
    on first use: a remote's start (which imports this module) skips them."""
    from ._bulk import read_entries

    start = pos
    pos, built, declared = read_entries(data, pos, end, container, raw, budget)
    if pos - start < _BULK_PRODUCTIVE:
        looks -= 1
    return pos, tuples + built, budget - declared, looks


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
    if not isinstance(data, (bytearray, memoryview)):
        raise TypeError(f"expected bytes, bytearray or memoryview, got {type(data)!r}")
    return bytes(data)
