"""Many values of one shape encoded column by column, with the per-item work in C.

A big list of records (dicts of one size with str keys, tuples or lists of one length)
or a big dict of values of one type is common (test reports, rows, options). Instead of
walking each record, the records are turned into columns (``zip(*records)``); a column
of one scalar type is encoded by a single ``map`` over a struct packer or
``str.encode``, a column whose values are all equal (str, int, bool, None) becomes one
constant merged with the separators around it, a column of records is encoded the same
way one level down, and each row is put back together by one ``b"".join`` over a
``zip`` of the columns. A column whose items are not all of one supported type is
encoded item by item by the general encoder, so every value gets exactly the bytes the
general encoder writes (a test holds them equal).

``write_record_list`` and ``write_record_dict`` are whole-container writers (see
``_encoder``): they write all of a container or nothing.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat

from ._encoder import encode_any
from ._startup import TYPE_CHECKING
from ._writers import (
    CACHED,
    EMPTY_LIST,
    FIRST_INDEX,
    INDICES,
    STR_HEADS,
    TUPLE_CLOSERS,
    list_separators,
    pack_cd,
    pack_ci,
)

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

    from ._hook import ChannelHook

    EncodeOne = Callable[[Any], bytes]

__all__ = ["write_record_dict", "write_record_list"]

_join = b"".join  # one bytes per record: far fewer parts to join at the end

_from_iterable = chain.from_iterable
_BOOLS = {True: b"R", False: b"C"}
_N = b"N"


def write_record_list(x: List[Any], parts: List[bytes], hook: Optional[ChannelHook]) -> bool:
    """Append the encoding of x, a list of records (dicts, tuples or lists) of one shape,
    one bytes per item; False (nothing written) if they are not of one shape."""
    records = record_pieces(x, _one_encoder(hook))
    if records is None:
        return False
    parts.append(pack_ci(b"K", len(x)))
    parts.append(FIRST_INDEX)
    parts.extend(map(_join, zip(*records, list_separators(len(x)))))
    return True


def write_record_dict(x: Dict[Any, Any], parts: List[bytes], hook: Optional[ChannelHook]) -> bool:
    """Append the encoding of x, a dict with str keys, one bytes per entry; False
    (nothing written) if a key is not exactly a str."""
    if set(map(type, x)) != {str}:
        return False
    # values stays referenced until the rows are joined: freed as soon as the columns
    # were made, the dict corpus dumped 15% slower (an effect of the memory allocator)
    values = list(x.values())
    columns = column_pieces(values, _one_encoder(hook))
    parts.append(b"J")
    parts.extend(map(_join, zip(*str_pieces(list(x)), *columns, repeat(b"P"))))
    return True


def _one_encoder(hook: Optional[ChannelHook]) -> EncodeOne:
    """The general encoder of one value, for the columns of mixed types."""

    def one(x: Any) -> bytes:
        parts: List[bytes] = []
        encode_any(x, parts, hook)
        return b"".join(parts)

    return one


def str_pieces(values: Sequence[str]) -> List[Iterable[bytes]]:
    """PY3STRING of each str as two columns, heads and UTF-8 bytes.

    UnicodeEncodeError if one is not UTF-8 encodable.
    """
    encoded = list(map(str.encode, values))
    sizes = list(map(len, encoded))
    if max(sizes) < CACHED:
        return [map(STR_HEADS.__getitem__, sizes), encoded]
    return [map(pack_ci, repeat(_N), sizes), encoded]


def record_pieces(records: Sequence[Any], one: EncodeOne) -> Optional[List[Iterable[bytes]]]:
    """The encoding of each of ``records`` (at least one, all dicts, all tuples or all
    lists), as ``one(record)`` would give, as columns: row i of the result is the
    concatenation of item i of every column; None if the records are not of one shape
    (dicts of one size with str keys, tuples or lists of one length).

    ``one`` is the general encoder of a single value, used for columns of mixed or
    unsupported types. Every column is an iterable of exactly ``len(records)`` items, to
    be consumed once.
    """
    pieces: List[Any] = []
    t = type(records[0])
    if t is dict:
        uniform = _dict_rows(records, one, pieces)
    else:
        uniform = _sequence_rows(records, t is tuple, one, pieces)
    return _as_columns(pieces, len(records)) if uniform else None


def column_pieces(values: Sequence[Any], one: EncodeOne) -> List[Iterable[bytes]]:
    """As ``record_pieces``, for values of any types (at least one); never None."""
    pieces: List[Any] = []
    _add_column(values, one, pieces)
    return _as_columns(pieces, len(values))


def _as_columns(pieces: List[Any], n: int) -> List[Iterable[bytes]]:
    """The pieces as columns of n rows: a bytes that every row repeats becomes one."""
    return [repeat(piece, n) if type(piece) is bytes else piece for piece in pieces]


def _add(pieces: List[Any], piece: Any) -> None:
    """Append a column, or a bytes that every row repeats (merged with one before it)."""
    if type(piece) is bytes and pieces and type(pieces[-1]) is bytes:
        pieces[-1] += piece
    else:
        pieces.append(piece)


def _add_column(values: Sequence[Any], one: EncodeOne, pieces: List[Any]) -> None:
    n = len(values)
    types = set(map(type, values))
    t = types.pop() if len(types) == 1 else None
    if t is str or t is int or t is bool:
        # equal values (exact types) are equal bytes: one constant instead of a column
        first = values[0]
        if values[-1] == first and values.count(first) == n:
            _add(pieces, one(first))
        elif t is str:
            pieces.extend(str_pieces(values))
        elif t is bool:
            pieces.append(list(map(_BOOLS.__getitem__, values)))
        else:
            try:
                pieces.append(list(map(pack_ci, repeat(b"F"), values)))
            except struct.error:  # beyond int4: LONGINT, item by item
                pieces.append(list(map(one, values)))
    elif t is float:
        pieces.append(map(pack_cd, repeat(b"D"), values))
    elif t is type(None):
        _add(pieces, b"L")
    elif not (
        (t is dict and _dict_rows(values, one, pieces))
        or ((t is tuple or t is list) and _sequence_rows(values, t is tuple, one, pieces))
    ):
        pieces.append(list(map(one, values)))


def _dict_rows(records: Sequence[dict[Any, Any]], one: EncodeOne, pieces: List[Any]) -> bool:
    # All keys exactly str (a key equal to a str but of another type would be written
    # differently) and every dict of one size; keys written per row unless all the
    # dicts have the same keys in the same order.
    sizes = set(map(len, records))
    if len(sizes) != 1 or set(map(type, _from_iterable(records))) - {str}:
        return False
    size = sizes.pop()
    _add(pieces, b"J")
    if not size:
        return True
    columns = list(zip(*map(dict.values, records)))
    if len(set(map(tuple, records))) == 1:
        heads = list(map(b"".join, zip(*str_pieces(list(records[0])))))
        for i, (head, column) in enumerate(zip(heads, columns)):
            _add(pieces, b"P" + head if i else head)
            _add_column(column, one, pieces)
    else:
        for i, (keys, column) in enumerate(zip(zip(*records), columns)):
            if i:
                _add(pieces, b"P")
            _add_column(keys, one, pieces)
            _add_column(column, one, pieces)
    _add(pieces, b"P")
    return True


def _sequence_rows(
    records: Sequence[Any], is_tuple: bool, one: EncodeOne, pieces: List[Any]
) -> bool:
    sizes = set(map(len, records))
    size = sizes.pop() if len(sizes) == 1 else CACHED
    if size >= CACHED:
        return False
    if size == 0:
        _add(pieces, b"@\x00\x00\x00\x00" if is_tuple else EMPTY_LIST)
    elif is_tuple:
        for column in zip(*records):
            _add_column(column, one, pieces)
        _add(pieces, TUPLE_CLOSERS[size])
    else:
        head = pack_ci(b"K", size)
        for i, column in enumerate(zip(*records)):
            _add(pieces, (b"P" if i else head) + INDICES[i])
            _add_column(column, one, pieces)
        _add(pieces, b"P")
    return True
