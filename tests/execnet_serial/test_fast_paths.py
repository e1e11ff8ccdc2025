"""The bulk paths write and read exactly what the general paths do.

Encoding: many records (lists of tuples, dicts or lists of one shape, big dicts of such
values) are written column by column (``_columns``); the bytes must equal those of the
iterative encoder, which writes item by item. Decoding: runs of same-shaped entries are
read in batches (the bulk readers behind ``_bulk``) and a big payload's ASCII strings
are slices of one latin-1 text; on any input, valid or hostile, the outcome (the value,
or LoadError and its message) must be the one the general loop gives with those paths
switched off.
"""

from __future__ import annotations

import random
import struct
from typing import Any, Callable, Iterator, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_serial import DumpError, LoadError, _bulk, _decoder, _shapes, dumps, loads
from execnet_serial._encoder_deep import encode_iteratively
from tests.execnet_serial.serial_values import same

# Scalars the bulk paths handle, and some they leave to the general ones.
scalars = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(),
    st.text(max_size=6),
    st.sampled_from(["", "a", "é", "日本", "\x00", "\x7f\x80"]),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
    st.binary(max_size=4),
    st.complex_numbers(allow_nan=False),
)


def _records(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A list of 8 to 40 records of one shape (often the same types per field)."""

    def build(kind: str, width: int, types: List[st.SearchStrategy[Any]]) -> Any:
        row: st.SearchStrategy[Any]
        if kind == "tuple":
            row = st.tuples(*types)
        elif kind == "list":
            row = st.tuples(*types).map(list)
        else:
            keys = [f"k{i}" for i in range(width)]
            row = st.tuples(*types).map(lambda vs: dict(zip(keys, vs)))
        return st.lists(row, min_size=8, max_size=40)

    return st.tuples(
        st.sampled_from(["tuple", "list", "dict"]),
        st.integers(0, 4),
        st.lists(st.sampled_from([inner, st.integers(0, 9), st.text(max_size=3)]), max_size=4),
    ).flatmap(lambda kwt: build(kwt[0], len(kwt[2]), kwt[2]))


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        _records(inner),
        st.dictionaries(st.text(max_size=5), inner, min_size=8, max_size=30),
        st.dictionaries(st.text(max_size=5), st.tuples(inner, inner), min_size=8, max_size=30),
        st.lists(st.dictionaries(st.text(max_size=3), inner, max_size=3), min_size=8, max_size=20),
        st.lists(inner, min_size=8, max_size=20),
    ),
    max_leaves=60,
)


def _general_bytes(value: Any) -> bytes:
    parts = [b"\x02"]
    encode_iteratively(value, parts, None)
    parts.append(b"Q")
    return b"".join(parts)


def _assert_general_bytes(value: Any) -> None:
    """dumps writes the item-by-item bytes, or raises DumpError where that one fails."""
    try:
        expected = _general_bytes(value)
    except (DumpError, UnicodeEncodeError):
        with pytest.raises(DumpError):
            dumps(value)
        return
    assert dumps(value) == expected
    assert same(loads(expected), value)


@settings(max_examples=400, deadline=None)
@given(values)
def test_column_encoder_writes_the_general_bytes(value: Any) -> None:
    _assert_general_bytes(value)


def test_column_encoder_exact_types() -> None:
    class Text(str):
        pass

    bad = [(1, "a")] * 9 + [(1, Text("a"))]
    with pytest.raises(DumpError, match="Text"):
        dumps(bad)
    keyed = [{"a": 1}] * 9 + [{Text("a"): 1}]
    with pytest.raises(DumpError, match="Text"):
        dumps(keyed)
    mixed = [{1: "x"}] * 5 + [{True: "x"}] * 5  # equal keys of two types
    assert dumps(mixed) == _general_bytes(mixed)
    with pytest.raises(DumpError, match="UTF-8"):
        dumps({f"k{i}": (i, "\ud800" if i == 7 else "v") for i in range(10)})
    wide = [(2**40, -(2**31) - 1, 2**31 - 1)] * 10  # ints beyond int4: LONGINT
    assert dumps(wide) == _general_bytes(wide)
    empty = [(), [], {}] * 4 + [[()] * 9, [[]] * 9, [{}] * 9]
    assert dumps(empty) == _general_bytes(empty)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_record_dict_writer_writes_the_general_bytes(data: st.DataObject) -> None:
    # big dicts (65+ entries) of records are written column by column
    # (_columns.write_record_dict); the same bytes as item by item, or the same DumpError
    records = data.draw(_records(scalars), label="records")
    values = records * (65 // len(records) + 1)  # records of one shape, 65 or more
    keys = [f"key{i}" for i in range(len(values))]
    value = dict(zip(keys, values))
    odd = data.draw(st.sampled_from(["none", "first", "last", "key"]))
    if odd == "first":
        value[keys[0]] = "not a record"
    elif odd == "last":
        value[keys[-1]] = 1.5
    elif odd == "key":
        value[3] = values[0]  # a key that is not a str
    _assert_general_bytes(value)


def test_column_encoder_deep_and_cyclic() -> None:
    deep: Any = "leaf"
    for _ in range(3000):
        deep = [deep]
    value = [deep] * 9
    assert dumps(value) == _general_bytes(value)
    cyclic: List[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(DumpError):
        dumps([cyclic] * 9)


# What makes the decoder's fast paths engage: set to 8, they engage on small inputs too.
_THRESHOLDS = (
    (_decoder, "BULK_LIST_MIN_BYTES"),
    (_decoder, "BULK_DICT_MIN_BYTES"),
    (_shapes, "SHAPES_MIN_ITEMS"),
    (_decoder, "TEXT_MIN"),
    (_decoder, "TEXT_AFTER"),
)


def _general_outcome(data: bytes, **options: bool) -> Any:
    """The outcome of the opcode loop alone: no bulk reader, no latin-1 text."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_bulk, "READERS", ())
        patch.setattr(_decoder, "TEXT_MIN", 1 << 62)
        return _outcome(data, **options)


def _fast_outcome(data: bytes, **options: bool) -> Any:
    """The outcome with the fast paths taken on small inputs too (as the tests' are)."""
    with pytest.MonkeyPatch.context() as patch:
        for module, name in _THRESHOLDS:
            patch.setattr(module, name, 8)
        return _outcome(data, **options)


def _outcome(data: bytes, **options: bool) -> Any:
    try:
        return ("value", loads(data, **options))
    except LoadError as exc:
        return ("error", str(exc))


def _assert_same_outcome(data: bytes, **options: bool) -> None:
    fast = _fast_outcome(data, **options)
    general = _general_outcome(data, **options)
    assert fast[0] == general[0], (fast, general)
    if fast[0] == "error":
        assert fast[1] == general[1]
    else:
        assert same(fast[1], general[1])


def _report(i: int) -> Any:
    failed = i % 4 == 0
    return {
        "nodeid": f"t.py::test[{i}]",
        "location": (f"m{i % 3}.py", i, "x" * (i % 5)),
        "keywords": {f"test[{i}]": 1, "c": 1},
        "outcome": "failed" if failed else "passed",
        "longrepr": "boom" * i if failed else None,
        "sections": [("out", f"line {i}\n"), ("log", "é" * (i % 3))],
        "duration": 1.5 * i,
        "empty": ([], {}, ()),
        "flags": [True, False, None],
    }


def _record_streams() -> Iterator[bytes]:
    """Valid streams the batch readers take (big enough, runs of few shapes)."""
    yield dumps([_report(i) for i in range(40)])
    yield dumps([[i, f"s{i}", [i, {"a": i, f"k{i}": -i}]] for i in range(30)])
    yield dumps([(i, "é" * (i % 4), None, 2.5) for i in range(60)])
    yield dumps([{"a": i % 2 and "x", "b": (i,) * (i % 3)} for i in range(40)])
    yield dumps({f"t.py::test[{i}]": _report(i) for i in range(30)})
    yield dumps({f"k{i}": [i, f"{i}", {"é": i}] for i in range(30)})
    yield dumps({f"key{i}": (i, f"value {i}", i * 1.5) for i in range(300)})
    yield dumps({f"k{i:03}": i for i in range(200)})
    yield dumps({f"k{i:03}": (None, True, False, -i, "é" * 3) for i in range(120)})
    yield dumps([(i, f"{i:04}", float(i)) for i in range(150)])
    yield dumps([f"{i:05}" for i in range(40)] + [None] * 20 + [1.5] * 30)
    yield dumps(({"a": [(1, "x")] * 60}, [{f"{i:02}": (i, i) for i in range(60)}] * 2))
    yield dumps({"s": {f"{i:03}": "日本語" if i % 17 else "ascii" for i in range(100)}})


@pytest.mark.parametrize("options", [{}, {"py3str_as_py2str": True}, {"py2str_as_py3str": True}])
def test_batch_reader_valid_streams(options: Any) -> None:
    for data in _record_streams():
        _assert_same_outcome(data, **options)


def test_bulk_paths_at_their_default_thresholds() -> None:
    reports = [_report(i) for i in range(300)]
    rows = {f"key{i}": (i, f"value {i}", i * 1.5) for i in range(2000)}
    by_id = {report["nodeid"]: report for report in reports}
    for value in (reports, rows, [reports, rows], by_id):
        data = dumps(value)
        assert same(loads(data), value)
        assert _general_outcome(data)[0] == "value"


def _mutations(rng: random.Random, data: bytes) -> Iterator[bytes]:
    for _ in range(150):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(buf))
            kind = rng.randrange(4)
            if kind == 0:
                buf[where] ^= 1 << rng.randrange(8)
            elif kind == 1:
                buf[where] = rng.choice(b"@CDFJKLNPQR\x00\x80\xc3")
            elif kind == 2 and where + 4 < len(buf):
                edge = rng.choice([0, 1, 3, -1, 2**31 - 1, len(buf)])
                buf[where : where + 4] = struct.pack(">i", edge)
            else:
                del buf[where : where + rng.randint(1, 6)]
        yield bytes(buf)


@pytest.mark.parametrize("options", [{}, {"py3str_as_py2str": True}])
def test_batch_reader_hostile_streams_behave_as_the_general_loop(options: Any) -> None:
    rng = random.Random(20261125)
    for data in _record_streams():
        for mutated in _mutations(rng, data):
            _assert_same_outcome(mutated, **options)


def test_list_budget_is_shared_with_the_shape_reader() -> None:
    # A NEWLIST before the records declares most of the budget; the lists inside the
    # records then run out of it at some record: the same LoadError either way.
    records = dumps([_report(i) for i in range(40)])[1:-1]
    size = len(records) + 40
    for spent in range(size - 400, size, 7):
        data = b"\x02K" + struct.pack(">i", spent) + records + b"L" * 30
        data += b"@\x00\x00\x00\x02Q"
        _assert_same_outcome(data)


@pytest.mark.parametrize(
    "make",
    [
        lambda i: (i, f"v{i}"),
        lambda i: f"{i:03}",
        lambda i: (None, i),
    ],
)
def test_batch_reader_lists_with_wrong_indices(make: Callable[[int], Any]) -> None:
    data = bytearray(dumps([make(i) for i in range(100)]))
    # an index repeated, out of range, negative: the general loop decides
    first = data.index(b"F\x00\x00\x00\x05")
    for index in (4, 99, 100, -1, -100, 2**31 - 1):
        changed = bytes(data[: first + 1]) + struct.pack(">i", index) + bytes(data[first + 5 :])
        _assert_same_outcome(changed)
