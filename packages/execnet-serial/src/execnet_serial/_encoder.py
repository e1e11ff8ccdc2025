"""Values to the opcode stream, fast.

Goals: byte-identical output to execnet 2.1.2, speed in pure Python, any nesting
depth, and nothing but DumpError for a value that cannot be written. The plan:

- one small function per container type; in each, the common scalars (str, small int,
  None, float) of its items are encoded inline, everything else goes through
  ``encode_any``, which dispatches on the exact type (a subclass is a DumpError). The
  inline scalars are the one thing written three times here (tuple items, list items,
  dict values), on purpose: one shared loop for the three costs a quarter to a half
  more per item (a branch or a zip per item), a call per item a fifth to two thirds;
- pre-encoded headers are looked up, not packed; str dict keys (which repeat across
  the many dicts of a typical message) are kept encoded in a small cache;
- everything is appended to one list of parts and joined once.

Every encoder here takes ``(value, parts, hook)`` and appends to ``parts``: the
general ones (``encode_any``, one function per container type, and the iterative
``_encoder_deep.encode_iteratively``) write any value they get; the fast paths, behind
one interface, are *whole-container writers* that either append the container's whole
encoding (the very bytes the general encoders write: the tests compare them) and return
True, or append nothing and return False. They are ``_writers.write_scalar_list`` (a
list of 8+ ints, strs or floats; imported at start), and ``_columns.write_record_list``
and ``_columns.write_record_dict`` (many records of one shape, column by column;
imported on first use).

The recursive encoder recurses once per container: a value nested deeper than the
recursion limit raises RecursionError, and ``dumps_payload_parts`` starts over with the
iterative encoder (imported on first use), which writes the same bytes with a stack of
its own.
"""

from __future__ import annotations

import struct
import sys

from ._errors import DumpError
from ._startup import TYPE_CHECKING
from ._writers import (
    CACHED,
    EMPTY_LIST,
    HOMOGENEOUS_MIN,
    INDICES,
    INT4_MAX,
    INT4_MIN,
    SMALL_INT_OFFSET,
    SMALL_INTS,
    STR_HEADS,
    TUPLE_CLOSERS,
    long_int,
    pack_cd,
    pack_cdd,
    pack_ci,
    write_scalar_list,
)

if TYPE_CHECKING:
    from typing import Any, Callable, Collection, Dict, List, Optional

    from ._hook import ChannelHook

    _Parts = List[bytes]

__all__ = ["dumps_payload", "dumps_payload_parts", "encode", "encode_any"]

_KEY_CACHE_SIZE = 2048
_KEY_CACHE_MAX_LEN = 64
_KEY_CACHE_DICT_MAX = 64
_key_cache: Dict[str, bytes] = {}


def encode_any(x: Any, parts: _Parts, hook: Optional[ChannelHook]) -> None:
    """Append the opcodes of any value; DumpError names a type that has none."""
    t = type(x)
    if t is str:
        e = x.encode("utf-8")
        n = len(e)
        parts.append(STR_HEADS[n] if n < CACHED else pack_ci(b"N", n))
        parts.append(e)
    elif t is int:
        parts.append(pack_ci(b"F", x) if INT4_MIN <= x <= INT4_MAX else long_int(x))
    elif x is None:
        parts.append(b"L")
    elif t is float:
        parts.append(pack_cd(b"D", x))
    elif t is bool:
        parts.append(b"R" if x else b"C")
    elif t is bytes:
        parts.append(pack_ci(b"A", len(x)))
        parts.append(x)
    elif t is complex:
        parts.append(pack_cdd(b"T", x.real, x.imag))
    else:
        container = _CONTAINERS.get(t)
        if container is not None:
            container(x, parts, hook)
        elif hook is not None and t is hook.channel_type:
            parts.append(pack_ci(b"B", hook.channel_id(x)))
        else:
            raise DumpError(f"can't serialize {t!r}")


# The dict, list and tuple loops below each write the common scalars (str, int, None,
# float) themselves instead of calling encode_any per item: the same few lines three
# times, on purpose. Through encode_any, a message of (int, str, float) encodes about a
# third slower (0.60 against 0.80 us per message, CPython 3.11, best of 21 runs).


def _encode_dict(x: Dict[Any, Any], parts: _Parts, hook: Optional[ChannelHook]) -> None:
    w = parts.append
    if len(x) > _KEY_CACHE_DICT_MAX and _write_record_dict(x, parts, hook):
        return
    w(b"J")
    # Small dicts (records: reports, options) share their keys; big ones rarely do.
    caching = len(x) <= _KEY_CACHE_DICT_MAX
    cache = _key_cache if caching else {}
    for k, v in x.items():
        if type(k) is str:
            e = cache.get(k)
            if e is None:
                e = k.encode("utf-8")
                n = len(e)
                e = (STR_HEADS[n] if n < CACHED else pack_ci(b"N", n)) + e
                if caching and len(k) <= _KEY_CACHE_MAX_LEN:
                    if len(cache) >= _KEY_CACHE_SIZE:
                        cache.clear()
                    cache[k] = e
            w(e)
        else:
            encode_any(k, parts, hook)
        t = type(v)
        if t is str:
            e = v.encode("utf-8")
            n = len(e)
            w(STR_HEADS[n] if n < CACHED else pack_ci(b"N", n))
            w(e)
        elif t is int:
            if -SMALL_INT_OFFSET <= v < CACHED:
                w(SMALL_INTS[v + SMALL_INT_OFFSET])
            else:
                w(pack_ci(b"F", v) if INT4_MIN <= v <= INT4_MAX else long_int(v))
        elif v is None:
            w(b"L")
        elif t is float:
            w(pack_cd(b"D", v))
        elif t is dict:
            _encode_dict(v, parts, hook)
        elif t is tuple:
            _encode_tuple(v, parts, hook)
        elif t is list:
            _encode_list(v, parts, hook)
        else:
            encode_any(v, parts, hook)
        w(b"P")


def _encode_list(x: List[Any], parts: _Parts, hook: Optional[ChannelHook]) -> None:
    n = len(x)
    if n == 0:
        parts.append(EMPTY_LIST)
        return
    if n >= HOMOGENEOUS_MIN and (
        (type(x[0]) in _RECORDS and _write_record_list(x, parts, hook))
        or write_scalar_list(x, parts, hook)
    ):
        return
    w = parts.append
    w(pack_ci(b"K", n))
    for i, v in enumerate(x):
        w(INDICES[i] if i < CACHED else pack_ci(b"F", i))
        t = type(v)
        if t is str:
            e = v.encode("utf-8")
            n = len(e)
            w(STR_HEADS[n] if n < CACHED else pack_ci(b"N", n))
            w(e)
        elif t is int:
            if -SMALL_INT_OFFSET <= v < CACHED:
                w(SMALL_INTS[v + SMALL_INT_OFFSET])
            else:
                w(pack_ci(b"F", v) if INT4_MIN <= v <= INT4_MAX else long_int(v))
        elif v is None:
            w(b"L")
        elif t is dict:
            _encode_dict(v, parts, hook)
        elif t is tuple:
            _encode_tuple(v, parts, hook)
        else:
            encode_any(v, parts, hook)
        w(b"P")


def _encode_tuple(x: tuple[Any, ...], parts: _Parts, hook: Optional[ChannelHook]) -> None:
    w = parts.append
    for v in x:
        t = type(v)
        if t is str:
            e = v.encode("utf-8")
            n = len(e)
            w(STR_HEADS[n] if n < CACHED else pack_ci(b"N", n))
            w(e)
        elif t is int:
            if -SMALL_INT_OFFSET <= v < CACHED:
                w(SMALL_INTS[v + SMALL_INT_OFFSET])
            else:
                w(pack_ci(b"F", v) if INT4_MIN <= v <= INT4_MAX else long_int(v))
        elif v is None:
            w(b"L")
        elif t is float:
            w(pack_cd(b"D", v))
        else:
            encode_any(v, parts, hook)
    n = len(x)
    w(TUPLE_CLOSERS[n] if n < CACHED else pack_ci(b"@", n))


def _encode_set(x: Any, parts: _Parts, hook: Optional[ChannelHook]) -> None:
    for v in x:
        encode_any(v, parts, hook)
    parts.append(pack_ci(b"O" if type(x) is set else b"E", len(x)))


_CONTAINERS: Dict[type, Callable[[Any, _Parts, Optional[ChannelHook]], None]] = {
    dict: _encode_dict,
    list: _encode_list,
    tuple: _encode_tuple,
    set: _encode_set,
    frozenset: _encode_set,
}
_RECORDS = (dict, tuple, list)


def _records_of_one_type(values: Collection[Any], first: Any, last: Any) -> bool:
    """All of values (its first and last items given) are dicts, all tuples or all lists:
    worth a look by ``_columns``. The first and last are tested before the whole is."""
    t = type(first)
    return t in _RECORDS and type(last) is t and len(set(map(type, values))) == 1


def _write_record_list(x: List[Any], parts: _Parts, hook: Optional[ChannelHook]) -> bool:
    """``_columns.write_record_list`` (a whole-container writer), for records only."""
    if not _records_of_one_type(x, x[0], x[-1]):
        return False
    from ._columns import write_record_list  # first use: not at start

    return write_record_list(x, parts, hook)


def _write_record_dict(x: Dict[Any, Any], parts: _Parts, hook: Optional[ChannelHook]) -> bool:
    """``_columns.write_record_dict`` (a whole-container writer), for records only."""
    values = x.values()
    if not _records_of_one_type(values, next(iter(values)), next(reversed(values))):
        return False
    from ._columns import write_record_dict  # first use: not at start

    return write_record_dict(x, parts, hook)


# From 3.11 on, Python-to-Python calls use no C stack, so recursion is stopped by
# RecursionError alone. Before that, each call also takes C stack: a raised recursion
# limit could let a deep value overflow it, so then only the iterative encoder runs.
_RECURSION_IS_SAFE = sys.version_info >= (3, 11) and sys.implementation.name == "cpython"
_SAFE_RECURSION_LIMIT = 4000


def dumps_payload_parts(obj: object, hook: Optional[ChannelHook] = None) -> _Parts:
    """The opcode stream of ``obj`` and STOP as a list of parts, not joined.

    ``parts[0]`` is ``b""``, a place for the caller's own header: the channel layer puts
    its frame header there and writes the parts (a big bytes value among them is not
    copied) or joins them once into a whole frame. Raises what ``dumps_payload`` raises.

    >>> parts = dumps_payload_parts(("a", 1))
    >>> parts[0], b"".join(parts) == dumps_payload(("a", 1))
    (b'', True)
    """
    parts: _Parts = [b""]
    try:
        if _RECURSION_IS_SAFE or sys.getrecursionlimit() <= _SAFE_RECURSION_LIMIT:
            try:
                # containers straight to their function: a message is usually a tuple
                _CONTAINERS.get(type(obj), encode_any)(obj, parts, hook)
            except RecursionError:
                del parts[1:]
                _encode_iteratively(obj, parts, hook)
        else:
            _encode_iteratively(obj, parts, hook)
    except UnicodeEncodeError as exc:
        raise DumpError(f"can't serialize a str that is not UTF-8 encodable: {exc}") from None
    except struct.error as exc:
        raise DumpError(
            f"can't serialize a str, bytes or container of 2**31 or more bytes or items, "
            f"or a channel id beyond int4 ({exc})"
        ) from None
    parts.append(b"Q")
    return parts


def _encode_iteratively(obj: object, parts: _Parts, hook: Optional[ChannelHook]) -> None:
    from ._encoder_deep import encode_iteratively  # first use: not at start

    encode_iteratively(obj, parts, hook)


def encode(obj: object, hook: Optional[ChannelHook], head: bytes) -> bytes:
    """``head``, the opcode stream of ``obj``, STOP: one join, no further copy."""
    parts = dumps_payload_parts(obj, hook)
    parts[0] = head
    return b"".join(parts)


def dumps_payload(obj: object, hook: Optional[ChannelHook] = None) -> bytes:
    """The opcode stream of ``obj`` ending in STOP, without the version byte.

    This is what a channel message carries; ``dumps(obj)`` is ``b"\\x02"`` followed by
    the same bytes. Values of exactly ``hook.channel_type`` are written as CHANNEL with
    ``hook.channel_id(value)``.

    >>> dumps_payload([1, "a"])
    b'K\\x00\\x00\\x00\\x02F\\x00\\x00\\x00\\x00F\\x00\\x00\\x00\\x01PF\\x00\\x00\\x00\\x01N\\x00\\x00\\x00\\x01aPQ'
    """
    return encode(obj, hook, b"")
