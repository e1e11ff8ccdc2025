"""The encoder for values nested deeper than Python's recursion limit.

The fast encoder (``_encoder``) recurses once per container; when a value is nested so
deep that it hits RecursionError, ``dumps_payload_parts`` starts over with this one, which keeps a
stack of iterators instead of recursing, so 10,000 nested lists are just a longer
list. A container pushes an iterator over its items interleaved with pre-encoded
separators (``Raw``), so the per-item work is one exact-type test. It writes the same
bytes as the fast encoder (a test holds them equal). It also keeps the containers it is
inside of, so a value that contains itself is a DumpError instead of an endless loop
(the fast encoder meets RecursionError there and hands over to this one). Scalars and
channels are written by the fast encoder's ``encode_any``, which never recurses for them.
"""

from __future__ import annotations

from itertools import chain, repeat

from ._encoder import encode_any
from ._errors import DumpError
from ._startup import TYPE_CHECKING
from ._writers import (
    EMPTY_LIST,
    FIRST_INDEX,
    HOMOGENEOUS_MIN,
    SETITEM,
    Raw,
    from_iterable,
    list_separators,
    pack_ci,
    write_scalar_list,
)

if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Set

    from ._hook import ChannelHook

__all__ = ["encode_iteratively"]


def encode_iteratively(obj: object, parts: List[bytes], hook: Optional[ChannelHook]) -> None:
    """Append the opcodes of obj (without STOP) to parts, with no recursion."""
    w = parts.append
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
            elif t in _CONTAINERS:
                items = _items(x, t, parts)
                if items is None:
                    continue  # written whole
                key = id(x)
                if key in on_path:
                    raise DumpError(f"can't serialize a {t.__name__} that contains itself")
                path.append(key)
                on_path.add(key)
                stack.append(it)
                it = items
                break
            else:
                encode_any(x, parts, hook)  # a scalar or a channel: no recursion
        else:
            if not stack:
                return
            it = stack.pop()
            on_path.discard(path.pop())


def _items(x: Any, t: type, parts: List[bytes]) -> Optional[Iterator[Any]]:
    """Write the head of container x; its items and separators (``Raw``) to write next,
    or None if it was written whole (an empty or scalar list, an empty dict)."""
    if t is list:
        n = len(x)
        if n == 0:
            parts.append(EMPTY_LIST)
            return None
        if n >= HOMOGENEOUS_MIN and write_scalar_list(x, parts, None):
            return None
        parts.append(pack_ci(b"K", n))
        parts.append(FIRST_INDEX)
        return from_iterable(zip(x, list_separators(n)))
    if t is dict:
        parts.append(b"J")
        if not x:
            return None
        return from_iterable(zip(x.keys(), x.values(), repeat(SETITEM)))
    # tuple, set, frozenset: the items, then the count
    return chain(x, (Raw(pack_ci(_CONTAINERS[t], len(x))),))


_CONTAINERS: Dict[type, bytes] = {list: b"K", dict: b"J", tuple: b"@", set: b"O", frozenset: b"E"}
