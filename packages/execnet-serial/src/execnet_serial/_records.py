"""Runs of same-shaped dict or list entries decoded many at a time.

A big dict or list often holds entries that are laid out byte for byte alike apart from
their values: the same opcodes, the same string lengths (``{"key1234": (1234,
"value 1234", 1851.0), ...}``, rows of fixed-width fields). After NEWDICT or NEWLIST,
``read_runs`` reads the layout of the entry at hand (a str key or the list index, then one
scalar or a flat tuple of scalars, then SETITEM), builds a ``struct`` format for it and
unpacks 8, then 32, then 128 such entries with one call. Every opcode and length byte
of every entry is checked against the layout (one strided slice and ``tuple.count`` per
checked field; where one differs, the entries before it are kept), the strings are
decoded, and only then are the entries applied to the container, exactly as the
general loop would. When the layout stops matching, the next entry's layout is read; when an entry
has no supported layout (or the runs are short), the general loop takes over where this
stopped. Lengths are checked against the data before a format is built.
"""

from __future__ import annotations

import struct
from itertools import repeat

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["CONSTANTS", "read_runs", "str_size"]

# A layout must hold for _MIN_RUN entries, else the general loop goes on.
_FIRST_BATCH = 8
_MIN_RUN = 4
_MAX_BATCH = 128
# Compiled formats by (entry format, batch size), shared by all calls (a message of the
# same layout comes again), dropped all at once beyond this many.
_STRUCTS_KEPT = 64
_structs: Dict[Tuple[str, int], Any] = {}


def _matching(column: Tuple[Any, ...], expected: Any) -> int:
    """How many leading items of column equal expected (not all of them do)."""
    low, high = 0, len(column)  # column[:low] match, column[:high] do not all
    while high - low > 1:
        middle = (low + high) // 2
        if column[:middle].count(expected) == middle:
            low = middle
        else:
            high = middle
    return low


_unpack_i = struct.Struct(">i").unpack_from
CONSTANTS = {76: None, 82: True, 67: False}  # NONE, TRUE, FALSE
_FIXED = {70: ("i", 4), 68: ("d", 8)}  # INT, FLOAT: struct code, payload size
_STR, _RAW = 1, 2


class _Layout:
    """The byte layout of one entry: checked fields, key and value fields."""

    __slots__ = ("checks", "fmt", "is_tuple", "key", "size", "values", "width")

    def __init__(self) -> None:
        self.fmt: List[str] = [">"]
        self.checks: List[Tuple[int, bytes]] = []  # (field, expected bytes)
        self.key = -1  # field of the key (str) or list index (int)
        self.values: List[Tuple[int, Any]] = []  # (field, kind) or (-1, constant)
        self.is_tuple = False
        self.width = 0  # fields per entry
        self.size = 0  # bytes per entry

    def check(self, expected: bytes) -> None:
        if self.checks and self.checks[-1][0] == self.width - 1:
            # right after another checked field: one field for both
            _, before = self.checks.pop()
            self.fmt.pop()
            self.width -= 1
            self.size -= len(before)
            expected = before + expected
        self.fmt.append(f"{len(expected)}s")
        self.checks.append((self.width, expected))
        self.width += 1
        self.size += len(expected)

    def field(self, code: str, size: int) -> int:
        self.fmt.append(code)
        self.width += 1
        self.size += size
        return self.width - 1

    def apply(
        self,
        data: bytes,
        pos: int,
        k: int,
        container: Union[Dict[Any, Any], List[Any]],
        raw_strings: bool,
    ) -> int:
        """Set the first of k entries at pos that are laid out as this into container:
        how many (0 if their keys or strings are not what the fast path takes)."""
        body = "".join(self.fmt[1:])
        unpack = _structs.get((body, k))
        if unpack is None:
            if len(_structs) >= _STRUCTS_KEPT:
                _structs.clear()
            unpack = _structs[body, k] = struct.Struct(">" + body * k).unpack_from
        fields = unpack(data, pos)
        width = self.width
        good = k
        for field, expected in self.checks:
            column = fields[field::width]
            if column.count(expected) != k:
                good = min(good, _matching(column, expected))
        if good < k:
            if not good:
                return 0
            k = good
            fields = fields[: k * width]
        try:
            keys: Any = fields[self.key :: width]
            if isinstance(container, list):
                first = keys[0]
                if (
                    first < 0
                    or first + k > len(container)
                    or keys != tuple(range(first, first + k))
                ):
                    return 0
            elif not raw_strings:
                keys = list(map(bytes.decode, keys))
            columns: List[Any] = []
            for field, kind in self.values:
                if field < 0:
                    columns.append(repeat(kind, k))
                elif kind == _STR and not raw_strings:
                    columns.append(list(map(bytes.decode, fields[field::width])))
                else:
                    columns.append(fields[field::width])
        except UnicodeDecodeError:
            return 0  # the general loop names the string
        values: Any = zip(*columns) if self.is_tuple else columns[0]
        if isinstance(container, list):
            container[first : first + k] = values
        else:
            container.update(zip(keys, values))
        return k


def str_size(data: bytes, p: int, end: int) -> int:
    """The length of the PY3STRING at p, or -1 if its header or bytes run past end."""
    if end - p < 5:
        return -1
    n: int = _unpack_i(data, p + 1)[0]
    return n if 0 <= n <= end - p - 5 else -1


def _read_layout(data: bytes, pos: int, end: int, is_list: bool) -> Optional[_Layout]:
    """The layout of the entry at pos, or None if it is not a supported one."""
    layout = _Layout()
    p = pos
    if p >= end:
        return None
    if is_list:
        if end - p < 5 or data[p] != 70:  # INT index
            return None
        layout.check(b"F")
        layout.key = layout.field("i", 4)
        p += 5
    else:
        n = str_size(data, p, end) if data[p] == 78 else -1  # PY3STRING key
        if n < 0:
            return None
        layout.check(data[p : p + 5])
        layout.key = layout.field(f"{n}s", n)
        p += 5 + n
    count = 0
    while p < end:
        op = data[p]
        if op == 78:  # PY3STRING
            n = str_size(data, p, end)
            if n < 0:
                return None
            layout.check(data[p : p + 5])
            layout.values.append((layout.field(f"{n}s", n), _STR))
            p += 5 + n
        elif op in _FIXED:  # INT, FLOAT
            code, size = _FIXED[op]
            if end - p <= size:
                return None
            layout.check(data[p : p + 1])
            layout.values.append((layout.field(code, size), _RAW))
            p += 1 + size
        elif op in CONSTANTS:
            layout.check(data[p : p + 1])
            layout.values.append((-1, CONSTANTS[op]))
            p += 1
        elif op == 64:  # BUILDTUPLE of exactly the scalars before it, then SETITEM
            if end - p < 6 or layout.is_tuple or not count or _unpack_i(data, p + 1)[0] != count:
                return None
            layout.check(data[p : p + 5])
            layout.is_tuple = True
            p += 5
            count = 1
            continue
        elif op == 80:  # SETITEM
            if count != 1:
                return None
            layout.check(b"P")
            return layout
        else:
            return None
        if layout.is_tuple:
            return None  # a scalar after the tuple
        count += 1
    return None


def read_runs(  # noqa: PLR0917 - a bulk reader (``_bulk``)
    data: bytes,
    pos: int,
    end: int,
    container: Union[Dict[Any, Any], List[Any]],
    raw_strings: bool,
    budget: int,
) -> Tuple[int, int, int]:
    """Decode the runs of same-shaped entries of container (a dict just made by NEWDICT
    or a list by NEWLIST) that start at pos: the position after them, the number of
    tuples built and 0 (these entries hold no lists, so ``budget`` is not needed).
    ``raw_strings``: PY3STRING values stay bytes (py3str_as_py2str).
    """
    tuples = 0
    is_list = type(container) is list
    while True:
        layout = _read_layout(data, pos, end, is_list)
        if layout is None:
            return pos, tuples, 0
        size = layout.size
        k = _FIRST_BATCH
        done = 0
        while True:
            k = min(k, (end - pos) // size)
            got = layout.apply(data, pos, k, container, raw_strings) if k else 0
            pos += got * size
            done += got
            if layout.is_tuple and layout.values:
                tuples += got
            if got < k or not k:
                break  # the run ends (or the data): the next entry's layout, if any
            k = min(4 * k, _MAX_BATCH)
        if done < _MIN_RUN:
            return pos, tuples, 0
