"""Runs of records of one shape, strings of any length, decoded column by column.

``_records`` takes entries laid out byte for byte alike. Records such as test reports
differ in their strings' lengths and hold nested containers, so this reads the shape
of an entry instead: a mini stack machine over its opcodes gives a token list (fixed
bytes: opcodes, dict keys and strings the next record repeats, list indices; and
variable fields: ints, floats, strings) and a tree (tuple, list, dict, leaf, constant)
for building the value. The tokens are cut into segments, each ending with the length
of a variable string, one ``struct`` format per segment.

A batch then reads up to 64 entries, each with the first of the (at most four) shapes
learnt that fits it: per entry and segment one ``unpack_from`` whose fixed fields are
compared at once (an entry fitting no shape ends the batch where it starts) and one
slice for the string; the leaves are decoded per column and the values built bottom-up
with ``zip``, ``map(dict, ...)`` and ``map(list, ...)``. Nothing is applied unless all
of the batch succeeded; every length is checked against the data before it is used;
an entry fitting no shape is learnt anew, and when the shapes change too often, when an
entry is not a supported shape or when decoding fails, the general loop goes on from
there, so the outcome is always the one it would give (errors included).
"""

from __future__ import annotations

import struct
from itertools import repeat
from operator import itemgetter

from ._records import CONSTANTS, str_size
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

    _Node = Tuple[Any, ...]
    _Container = Union[Dict[Any, Any], List[Any]]

__all__ = ["SHAPES_MIN_ITEMS", "read_shapes"]

_unpack_i = struct.Struct(">i").unpack_from
_FIX, _INT, _FLOAT, _STR = 0, 1, 2, 3
_MAX_OPS = 2048  # opcodes in one record
_MAX_STACK = 64
_MAX_LIST = 256  # items of a list inside a record
_MAX_BATCH = 64
_KEEP = 4  # shapes learnt per container
_MIN_OPS = 12  # opcodes in an entry worth a shape
# Learning a shape costs about as much as decoding ten records in the opcode loop, and
# saves about half of each record's cost after that: shorter lists are left to the loop
# (and to ``_records``, which learns from one entry).
SHAPES_MIN_ITEMS = 128


def _parse(data: bytes, pos: int, end: int, is_list: bool) -> Optional[Tuple[Any, ...]]:
    """Tokens, key node, value node, end and opcode count of the entry at pos."""
    tokens: List[List[Any]] = []  # [kind, bytes]
    stack: List[_Node] = []
    p = pos
    for ops in range(1, _MAX_OPS):
        if p >= end or len(stack) > _MAX_STACK:
            return None
        op = data[p]
        if op == 78:  # PY3STRING
            n = str_size(data, p, end)
            if n < 0:
                return None
            tokens.append([_FIX, b"N"])
            tokens.append([_STR, data[p + 5 : p + 5 + n]])
            stack.append(("leaf", len(tokens) - 1))
            p += 5 + n
        elif op in {70, 68}:  # INT, FLOAT
            size = 4 if op == 70 else 8
            if end - p <= size:
                return None
            tokens.append([_FIX, data[p : p + 1]])
            tokens.append([_INT if op == 70 else _FLOAT, data[p + 1 : p + 1 + size]])
            stack.append(("leaf", len(tokens) - 1))
            p += 1 + size
        elif op in CONSTANTS:
            tokens.append([_FIX, data[p : p + 1]])
            stack.append(("const", CONSTANTS[op]))
            p += 1
        elif op in {64, 75}:  # BUILDTUPLE, NEWLIST
            if end - p < 5:
                return None
            n = _unpack_i(data, p + 1)[0]
            tokens.append([_FIX, data[p : p + 5]])
            p += 5
            if op == 64:
                if not 0 <= n <= len(stack):
                    return None
                items = stack[len(stack) - n :]
                del stack[len(stack) - n :]
                stack.append(("tuple", items))
            else:
                if not 0 <= n <= _MAX_LIST:
                    return None
                stack.append(("list", [None] * n))
        elif op == 74:  # NEWDICT
            tokens.append([_FIX, b"J"])
            stack.append(("dict", []))
            p += 1
        elif op == 80:  # SETITEM
            tokens.append([_FIX, b"P"])
            p += 1
            if len(stack) == 2:  # the entry's own key and value
                key, value = stack
                if key[0] != "leaf" or tokens[key[1]][0] != (_INT if is_list else _STR):
                    return None
                return tokens, key, value, p, ops
            if len(stack) < 3:
                return None
            value = stack.pop()
            key = stack.pop()
            container = stack[-1]
            if key[0] != "leaf":
                return None
            if container[0] == "dict" and tokens[key[1]][0] == _STR:
                container[1].append((key, value))
            elif container[0] == "list" and tokens[key[1]][0] == _INT:
                index = int.from_bytes(tokens[key[1]][1], "big", signed=True)
                slots = container[1]
                if not 0 <= index < len(slots) or slots[index] is not None:
                    return None
                slots[index] = value
                tokens[key[1]][0] = _FIX  # list indices are part of the shape
            else:
                return None
        else:
            return None
    return None


class _Shape:
    """One record shape: struct segments, fixed fields to check, the value tree."""

    __slots__ = (
        "constants",
        "count",
        "key",
        "leaves",
        "lists",
        "matched",
        "rows",
        "segments",
        "specs",
        "strings",
        "tuples",
        "value",
    )

    def __init__(
        self, tokens: List[List[Any]], key: _Node, value: _Node, constants: Dict[int, Any]
    ) -> None:
        self.key = key
        self.value = value
        self.constants = constants  # token index -> value of a string made fixed
        self.leaves: Dict[int, Tuple[int, int]] = {}  # token -> (segment, field)
        # segments: (unpack, size, checked fields getter, their bytes, string token or -1)
        self.segments: List[Tuple[Any, ...]] = []
        self.count = 0
        self.matched = 0  # entries read in all batches
        self.rows: List[List[Any]] = []
        self.strings: List[List[bytes]] = []
        self.specs: List[Tuple[Any, ...]] = []
        fmt: List[str] = []
        checks: List[Tuple[int, bytes]] = []
        for i, (kind, payload) in enumerate(tokens):
            if kind == _FIX:
                fixed = payload
                if checks and checks[-1][0] == len(fmt) - 1:
                    fixed = checks.pop()[1] + payload
                    fmt.pop()
                checks.append((len(fmt), fixed))
                fmt.append(f"{len(fixed)}s")
            else:
                self.leaves[i] = (len(self.segments), len(fmt))
                fmt.append("i" if kind != _FLOAT else "d")
            if kind == _STR:
                self._close(fmt, checks, i)
                fmt, checks = [], []
        self._close(fmt, checks, -1)
        counts = [0, 0]
        self._count(value, counts)
        self.tuples, self.lists = counts

    def _close(self, fmt: List[str], checks: List[Tuple[int, bytes]], string: int) -> None:
        st = struct.Struct(">" + "".join(fmt))
        fields = [field for field, _ in checks]
        expected: Any = tuple(payload for _, payload in checks)
        if len(fields) == 1:
            expected = expected[0]
        getter = itemgetter(*fields)
        self.segments.append((st.unpack_from, st.size, getter, expected, string))

    def _count(self, node: _Node, counts: List[int]) -> None:
        kind = node[0]
        if kind == "tuple":
            counts[0] += 1 if node[1] else 0
            for child in node[1]:
                self._count(child, counts)
        elif kind == "list":
            counts[1] += len(node[1])
            for child in node[1]:
                self._count(child, counts)
        elif kind == "dict":
            for _, child in node[1]:
                self._count(child, counts)

    def begin(self) -> None:
        """Start a batch: empty row and string buffers."""
        self.count = 0
        self.rows = [[] for _ in self.segments]
        self.strings = [[] for _ in self.segments]
        self.specs = [
            (
                unpack,
                size,
                getter,
                expected,
                self.rows[i].append,
                self.strings[i].append if string >= 0 else None,
            )
            for i, (unpack, size, getter, expected, string) in enumerate(self.segments)
        ]

    def read_one(self, data: bytes, p: int, end: int) -> int:
        """Read the entry at p into the batch if it has this shape: where it ends, or -1."""
        try:
            for unpack, size, getter, expected, add_row, add_string in self.specs:
                fields = unpack(data, p)
                if getter(fields) != expected:
                    break
                add_row(fields)
                p += size
                if add_string is not None:
                    n = fields[-1]
                    if n < 0 or n > end - p:
                        break
                    add_string(data[p : p + n])
                    p += n
            else:
                if p <= end:  # fixed fields past end: not this entry
                    self.count += 1
                    self.matched += 1
                    return p
        except struct.error:  # past the data's end
            pass
        count = self.count
        for column in self.rows:
            del column[count:]
        for column in self.strings:
            del column[count:]
        return -1

    def build(self, raw: bool) -> Tuple[List[Any], List[Any]]:
        """The keys and values of the entries read (UnicodeDecodeError for bad UTF-8)."""
        k = self.count
        columns = [list(zip(*segment_rows)) for segment_rows in self.rows]
        keys = list(self._column(self.key, k, columns, raw))
        return keys, list(self._column(self.value, k, columns, raw))

    def _column(self, node: _Node, k: int, columns: List[Any], raw: bool) -> Any:
        kind = node[0]
        if kind == "leaf":
            token = node[1]
            if token in self.constants:
                return repeat(self.constants[token], k)
            segment, field = self.leaves[token]
            if self.segments[segment][4] == token:  # a string: its bytes
                strings = self.strings[segment]
                return strings if raw else list(map(bytes.decode, strings))
            return columns[segment][field]
        if kind == "const":
            return repeat(node[1], k)
        if kind == "tuple":
            if not node[1]:
                return repeat((), k)
            return zip(*[self._column(child, k, columns, raw) for child in node[1]])
        if kind == "list":
            items = [self._column(child, k, columns, raw) for child in node[1]]
            return map(list, zip(*items) if items else repeat((), k))
        entries = node[1]  # dict
        if not entries:
            return map(dict, repeat((), k))
        keys = [self._column(key, k, columns, raw) for key, _ in entries]
        values = [self._column(value, k, columns, raw) for _, value in entries]
        return map(dict, map(zip, zip(*keys), zip(*values)))


def _learn(  # noqa: PLR0917
    data: bytes,
    pos: int,
    end: int,
    is_list: bool,
    raw: bool,
    parsed: Dict[int, Any],
    alone: bool,
) -> Optional[_Shape]:
    """The shape of the entry at pos; strings equal in the entry after it are fixed
    bytes. ``parsed``: entries parsed before, by position (the one at pos is used up).
    ``alone``: a shape the next entry does not share is taken too (every string varies)
    if the two entries after it share theirs; else None."""
    first = parsed.pop(pos) if pos in parsed else _parse(data, pos, end, is_list)
    if first is None or first[4] < _MIN_OPS:
        return None
    tokens, key, value, after, ops = first
    second = _parse_at(parsed, data, after, end, is_list)
    fixed: List[int] = []
    if second is not None and _same(tokens, second[0]):
        other = second[0]
        fixed = [i for i, (kind, text) in enumerate(tokens) if kind == _STR and text == other[i][1]]
    elif not alone or second is None:
        return None
    else:
        third = _parse_at(parsed, data, second[3], end, is_list)
        if third is None or not _same(second[0], third[0]):
            return None  # no two entries alike in three: entries of many shapes
    # The opcode loop costs ~150 ns per opcode, this ~200 ns per segment (one per string
    # that varies) and ~50 per opcode to build, plus ~0.5 us per entry: small or
    # string-heavy entries go faster through the loop.
    varying = sum(1 for kind, _ in tokens if kind == _STR) - len(fixed)
    if ops * 5 < (varying + 1) * 8 or not _complete(value):
        return None
    constants: Dict[int, Any] = {}
    for i in fixed:
        if i == key[1]:
            continue
        payload = tokens[i][1]
        try:
            constants[i] = payload if raw else payload.decode()
        except UnicodeDecodeError:
            return None
        tokens[i] = [_FIX, struct.pack(">i", len(payload)) + payload]
    return _Shape(tokens, key, value, constants)


def _parse_at(
    parsed: Dict[int, Any], data: bytes, pos: int, end: int, is_list: bool
) -> Optional[Tuple[Any, ...]]:
    """_parse, remembered by position (the entries after a learnt one come next)."""
    if pos not in parsed:
        parsed[pos] = _parse(data, pos, end, is_list)
    result: Optional[Tuple[Any, ...]] = parsed[pos]
    return result


def _same(tokens: List[List[Any]], other: List[List[Any]]) -> bool:
    """Two entries' tokens of one shape (fixed bytes equal, strings may differ)."""
    return len(tokens) == len(other) and all(
        a[0] == b[0] and (a[0] != _FIX or a[1] == b[1]) for a, b in zip(tokens, other)
    )


def _complete(node: _Node) -> bool:
    """Every slot of every list in the tree is filled (else the general loop's Nones)."""
    kind = node[0]
    if kind == "tuple":
        return all(map(_complete, node[1]))
    if kind == "list":
        return None not in node[1] and all(map(_complete, node[1]))
    if kind == "dict":
        return all(_complete(child) for _, child in node[1])
    return True


def _by_matches(shape: _Shape) -> int:
    return -shape.matched


def read_shapes(  # noqa: PLR0917 - a bulk reader (``_bulk``)
    data: bytes, pos: int, end: int, container: _Container, raw: bool, budget: int
) -> Tuple[int, int, int]:
    """Decode the entries of container (a list of SHAPES_MIN_ITEMS+ just made by NEWLIST,
    or a dict by NEWDICT: str keys) at pos while they come in few shapes: where they end,
    how many tuples (of at least one item) and list items they declared (at most
    ``budget``, the general loop's list budget)."""
    is_list = isinstance(container, list)
    if is_list and len(container) < SHAPES_MIN_ITEMS:
        return pos, 0, 0
    shapes: List[_Shape] = []
    tuples = items = entries = 0
    parsed: Dict[int, Any] = {}  # entries parsed while learning, by position
    while True:
        which: List[_Shape] = []
        p = pos
        for shape in shapes:
            shape.begin()
        while len(which) < _MAX_BATCH:
            for shape in shapes:
                q = shape.read_one(data, p, end)
                if q >= 0:
                    which.append(shape)
                    p = q
                    if shape is not shapes[0] and shape.matched > shapes[0].matched:
                        shapes.sort(key=_by_matches)  # the most frequent shape first
                    break
            else:
                break
        if which:
            try:
                built = [(shape, shape.build(raw)) for shape in shapes if shape.count]
            except UnicodeDecodeError:
                break  # the general loop names the string
            batch_items = sum(shape.count * shape.lists for shape, _ in built)
            batch_tuples = sum(shape.count * shape.tuples for shape, _ in built)
            if items + batch_items > budget:
                break
            if len(built) == 1:
                keys, values = built[0][1]
            else:
                key_its = {id(shape): iter(kv[0]) for shape, kv in built}
                value_its = {id(shape): iter(kv[1]) for shape, kv in built}
                keys = [next(key_its[id(shape)]) for shape in which]
                values = [next(value_its[id(shape)]) for shape in which]
            n = len(keys)
            if isinstance(container, list):
                first = keys[0]
                if first < 0 or first + n > len(container) or keys != list(range(first, first + n)):
                    break
                container[first : first + n] = values
            else:
                container.update(zip(keys, values))
            pos = p
            entries += n
            items += batch_items
            tuples += batch_tuples
            if n == _MAX_BATCH:
                continue
        if len(shapes) >= _KEEP or (len(shapes) >= 2 and entries < 32 * len(shapes)):
            break  # too many shapes for the entries read: the general loop does better
        # Only the first shape may be one the next entry does not share (a failed
        # report, then passed ones).
        learnt = _learn(data, pos, end, is_list, raw, parsed, not shapes)
        if learnt is None:
            break
        shapes.append(learnt)
    return pos, tuples, items
