"""The encoder for values nested deeper than Python's recursion limit.

The fast encoder (``_encoder``) recurses once per container; when a value is nested so
deep that it hits RecursionError, ``encode`` starts over with this one, which keeps a
stack of iterators instead of recursing, so 10,000 nested lists are just a longer
list. A container pushes an iterator over its items interleaved with pre-encoded
separators (``Raw``), so the per-item work is one exact-type test. It writes the same
bytes as the fast encoder (a test holds them equal). It also keeps the containers it is
inside of, so a value that contains itself is a DumpError instead of an endless loop
(the fast encoder meets RecursionError there and hands over to this one).
"""

from __future__ import annotations

from itertools import chain, repeat

from ._errors import DumpError
from ._writers import (
    CACHED,
    EMPTY_LIST,
    FIRST_INDEX,
    HOMOGENEOUS_MIN,
    INT4_MAX,
    INT4_MIN,
    SETITEM,
    STR_HEADS,
    Raw,
    from_iterable,
    list_separators,
    long_int,
    pack_cd,
    pack_cdd,
    pack_ci,
    write_homogeneous_list,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Set

    from ._hook import ChannelHook

__all__ = ["encode_iteratively"]


def encode_iteratively(obj: object, hook: Optional[ChannelHook], parts: List[bytes]) -> None:
    """Append the opcodes of obj (without STOP) to parts, with no recursion."""
    w = parts.append
    channel_type: Any = hook.channel_type if hook is not None else _NoChannel
    stack: List[Iterator[Any]] = []
    # The containers being written, outermost first, and the same as a set: a container
    # met again inside itself would make this loop run until memory ran out.
    path: List[int] = []
    on_path: Set[int] = set()
    it: Iterator[Any] = iter((obj,))
    while True:
        for x in it:
            t = type(x)
            if t is Raw:
                w(x)
            elif t is str:
                e = x.encode("utf-8")
                n = len(e)
                w(STR_HEADS[n] if n < CACHED else pack_ci(b"N", n))
                w(e)
            elif t is int:
                w(pack_ci(b"F", x) if INT4_MIN <= x <= INT4_MAX else long_int(x))
            elif x is None:
                w(b"L")
            elif t is float:
                w(pack_cd(b"D", x))
            elif t is bool:
                w(b"R" if x else b"C")
            elif t is bytes:
                w(pack_ci(b"A", len(x)))
                w(x)
            elif t is complex:
                w(pack_cdd(b"T", x.real, x.imag))
            elif t in _CONTAINERS:
                if t is list:
                    n = len(x)
                    if n == 0:
                        w(EMPTY_LIST)
                        continue
                    if n >= HOMOGENEOUS_MIN and write_homogeneous_list(x, n, parts):
                        continue
                    w(pack_ci(b"K", n))
                    w(FIRST_INDEX)
                    items: Iterator[Any] = from_iterable(zip(x, list_separators(n)))
                elif t is dict:
                    w(b"J")
                    if not x:
                        continue
                    items = from_iterable(zip(x.keys(), x.values(), repeat(SETITEM)))
                else:  # tuple, set, frozenset: the items, then the count
                    items = chain(x, (Raw(pack_ci(_CONTAINERS[t], len(x))),))
                key = id(x)
                if key in on_path:
                    raise DumpError(f"can't serialize a {t.__name__} that contains itself")
                path.append(key)
                on_path.add(key)
                stack.append(it)
                it = items
                break
            elif t is channel_type:
                w(pack_ci(b"B", hook.channel_id(x)))  # type: ignore[union-attr]
            else:
                raise DumpError(f"can't serialize {t!r}")
        else:
            if not stack:
                return
            it = stack.pop()
            on_path.discard(path.pop())


_CONTAINERS: Dict[type, bytes] = {list: b"K", dict: b"J", tuple: b"@", set: b"O", frozenset: b"E"}


class _NoChannel:
    """Stands in for the channel type when there is no hook: nothing has this type."""
