"""Many values of one shape encoded column by column, with the per-item work in C.

A big list of records (dicts with the same str keys, tuples or lists of one length) or
a big dict of such values is common (test reports, rows, options). Instead of walking
each record, the records are turned into columns (``zip(*records)``), each column of
one scalar type is encoded by a single ``map`` over a struct packer or ``str.encode``,
a column of records is encoded the same way one level down, and the rows are put back
together with ``b"".join`` over a ``zip`` of the columns and the constant separators.
Any column whose items are not all of one supported type is encoded item by item by the
general encoder, so every value gets exactly the bytes the general encoder writes.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat

from ._writers import CACHED, EMPTY_LIST, INDICES, STR_HEADS, TUPLE_CLOSERS, pack_cd, pack_ci

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, List, Sequence

    EncodeOne = Callable[[Any], bytes]

__all__ = ["COLUMNS_MIN", "column_pieces", "str_pieces"]

# Below this many records, checking the shape costs more than it saves.
COLUMNS_MIN = 8

_from_iterable = chain.from_iterable
_BOOLS = {True: b"R", False: b"C"}
_N = b"N"


def str_pieces(values: Sequence[str]) -> List[Iterable[bytes]]:
    """PY3STRING of each str as two columns, heads and UTF-8 bytes.

    UnicodeEncodeError if one is not UTF-8 encodable.
    """
    encoded = list(map(str.encode, values))
    sizes = list(map(len, encoded))
    if max(sizes) < CACHED:
        return [map(STR_HEADS.__getitem__, sizes), encoded]
    return [map(pack_ci, repeat(_N), sizes), encoded]


def column_pieces(values: Sequence[Any], one: EncodeOne) -> List[Iterable[bytes]]:
    """The encoding of each of ``values`` (at least one), as ``one(value)`` would give,
    as columns: row i of the result is the concatenation of item i of every column.

    ``one`` is the general encoder of a single value, used for columns of mixed or
    unsupported types. Every column is an iterable of exactly ``len(values)`` items, to
    be consumed once.
    """
    n = len(values)
    types = set(map(type, values))
    if len(types) != 1:
        return [list(map(one, values))]
    t = types.pop()
    if t is str:
        return str_pieces(values)
    if t is int:
        try:
            return [list(map(pack_ci, repeat(b"F"), values))]
        except struct.error:  # beyond int4: LONGINT, item by item
            return [list(map(one, values))]
    if t is float:
        return [map(pack_cd, repeat(b"D"), values)]
    if values[0] is None:
        return [repeat(b"L", n)]
    if t is bool:
        return [map(_BOOLS.__getitem__, values)]
    if t is dict:
        return _dict_rows(values, one)
    if t is tuple or t is list:
        return _sequence_rows(values, t is tuple, one)
    return [list(map(one, values))]


def _dict_rows(records: Sequence[dict[Any, Any]], one: EncodeOne) -> List[Iterable[bytes]]:
    # All keys exactly str (a key equal to a str but of another type would be written
    # differently) and every dict of one size; keys written per row unless all the
    # dicts have the same keys in the same order.
    n = len(records)
    sizes = set(map(len, records))
    if len(sizes) != 1 or set(map(type, _from_iterable(records))) - {str}:
        return [list(map(one, records))]
    size = sizes.pop()
    if not size:
        return [repeat(b"J", n)]
    columns = list(zip(*map(dict.values, records)))
    pieces: List[Iterable[bytes]] = []
    if len(set(map(tuple, records))) == 1:
        heads = list(map(b"".join, zip(*str_pieces(list(records[0])))))
        for i, (head, column) in enumerate(zip(heads, columns)):
            pieces.append(repeat((b"P" if i else b"J") + head, n))
            pieces.extend(column_pieces(column, one))
    else:
        for i, (keys, column) in enumerate(zip(zip(*records), columns)):
            pieces.append(repeat(b"P" if i else b"J", n))
            pieces.extend(str_pieces(keys))
            pieces.extend(column_pieces(column, one))
    pieces.append(repeat(b"P", n))
    return pieces


def _sequence_rows(records: Sequence[Any], is_tuple: bool, one: EncodeOne) -> List[Iterable[bytes]]:
    n = len(records)
    sizes = set(map(len, records))
    if len(sizes) != 1:
        return [list(map(one, records))]
    size = sizes.pop()
    if size == 0:
        return [repeat(b"@\x00\x00\x00\x00" if is_tuple else EMPTY_LIST, n)]
    if size >= CACHED:
        return [list(map(one, records))]
    columns = list(zip(*records))
    pieces: List[Iterable[bytes]] = []
    if is_tuple:
        for column in columns:
            pieces.extend(column_pieces(column, one))
        pieces.append(repeat(TUPLE_CLOSERS[size], n))
    else:
        head = pack_ci(b"K", size)
        for i, column in enumerate(columns):
            pieces.append(repeat((b"P" if i else head) + INDICES[i], n))
            pieces.extend(column_pieces(column, one))
        pieces.append(repeat(b"P", n))
    return pieces
