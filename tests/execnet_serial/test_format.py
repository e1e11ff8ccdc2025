"""Every opcode, both ways, with the exact bytes written from the format table."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

import execnet_serial
from execnet_serial import DumpError, LoadError, dumps, dumps_payload, loads, loads_payload


def i4(n: int) -> bytes:
    return struct.pack(">i", n)


def s(opcode: bytes, payload: bytes) -> bytes:
    return opcode + i4(len(payload)) + payload


EXACT = [
    (None, b"L"),
    (True, b"R"),
    (False, b"C"),
    (0, b"F" + i4(0)),
    (-1, b"F" + i4(-1)),
    (2**31 - 1, b"F" + i4(2**31 - 1)),
    (-(2**31), b"F" + i4(-(2**31))),
    (2**31, s(b"H", b"2147483648")),
    (2**100, s(b"H", str(2**100).encode())),
    (-(2**31) - 1, s(b"H", b"-2147483649")),  # the original crashes here; we write LONGINT
    (1.5, b"D" + struct.pack(">d", 1.5)),
    (-0.0, b"D" + struct.pack(">d", -0.0)),
    (math.inf, b"D" + struct.pack(">d", math.inf)),
    (1 - 2j, b"T" + struct.pack(">dd", 1.0, -2.0)),
    ("", s(b"N", b"")),
    ("héllo", s(b"N", "héllo".encode())),
    ("\U0001f600", s(b"N", "\U0001f600".encode())),
    (b"", s(b"A", b"")),
    (b"\x00\xff", s(b"A", b"\x00\xff")),
    ([], b"K" + i4(0)),
    (
        [None, "a"],
        b"K" + i4(2) + b"F" + i4(0) + b"L" + b"P" + b"F" + i4(1) + s(b"N", b"a") + b"P",
    ),
    ({}, b"J"),
    ({"k": 1, 2: None}, b"J" + s(b"N", b"k") + b"F" + i4(1) + b"P" + b"F" + i4(2) + b"LP"),
    ((), b"@" + i4(0)),
    ((1, True), b"F" + i4(1) + b"R@" + i4(2)),
    ({7}, b"F" + i4(7) + b"O" + i4(1)),
    (set(), b"O" + i4(0)),
    (frozenset([7]), b"F" + i4(7) + b"E" + i4(1)),
    (frozenset(), b"E" + i4(0)),
    ([[]], b"K" + i4(1) + b"F" + i4(0) + b"K" + i4(0) + b"P"),
    (([1],), b"K" + i4(1) + b"F" + i4(0) + b"F" + i4(1) + b"P@" + i4(1)),
]


@pytest.mark.parametrize(("value", "stream"), EXACT, ids=[repr(v)[:30] for v, _ in EXACT])
def test_exact_bytes(value: Any, stream: bytes) -> None:
    assert dumps(value) == b"\x02" + stream + b"Q"
    assert dumps_payload(value) == stream + b"Q"
    loaded = loads(b"\x02" + stream + b"Q")
    assert type(loaded) is type(value)
    assert repr(loaded) == repr(value)
    assert repr(loads_payload(stream + b"Q")) == repr(value)


@pytest.mark.parametrize(
    ("items", "item_bytes"),
    [
        (list(range(-5, 20)), [b"F" + i4(i) for i in range(-5, 20)]),
        ([2**31 - 1] * 9 + [-(2**31)], [b"F" + i4(2**31 - 1)] * 9 + [b"F" + i4(-(2**31))]),
        ([1] * 9 + [2**31], [b"F" + i4(1)] * 9 + [s(b"H", b"2147483648")]),
        (["x", "é"] * 6, [s(b"N", b"x"), s(b"N", "é".encode())] * 6),
        ([0.5] * 10, [b"D" + struct.pack(">d", 0.5)] * 10),
        ([1, "a"] * 5, [b"F" + i4(1), s(b"N", b"a")] * 5),
    ],
    ids=["small-ints", "int4-edges", "one-long", "str", "float", "mixed"],
)
def test_homogeneous_lists_have_the_standard_layout(items: Any, item_bytes: Any) -> None:
    # Long lists of one type take faster paths on both sides; the bytes must not change.
    body = b"".join(b"F" + i4(i) + item + b"P" for i, item in enumerate(item_bytes))
    stream = b"K" + i4(len(items)) + body + b"Q"
    assert dumps_payload(items) == stream
    assert loads_payload(stream) == items


def test_list_longer_than_the_separator_cache() -> None:
    items: list[Any] = [None, "x"] * 5000
    data = dumps(items)
    assert data[:6] == b"\x02K" + i4(10000)
    assert data.endswith(b"F" + i4(9999) + s(b"N", b"x") + b"PQ")
    assert loads(data) == items


def test_python2_opcodes_load() -> None:
    assert loads(b"\x02G" + i4(-7) + b"Q") == -7  # LONG
    assert loads(b"\x02" + s(b"I", b"-123456789012345678901") + b"Q") == -123456789012345678901
    assert loads(b"\x02" + s(b"S", "ü".encode()) + b"Q") == "ü"  # UNICODE
    py2str = b"\x02" + s(b"M", b"caf\xe9") + b"Q"  # PY2STRING, latin-1 bytes
    assert loads(py2str) == b"caf\xe9"
    assert loads(py2str, py2str_as_py3str=True) == "café"


def test_string_options() -> None:
    data = dumps(["é", b"b"])
    assert loads(data) == ["é", b"b"]
    assert loads(data, py3str_as_py2str=True) == ["é".encode(), b"b"]
    assert loads(data, py2str_as_py3str=True) == ["é", b"b"]  # bytes stay bytes
    unicode = b"\x02" + s(b"S", b"u") + b"Q"
    assert loads(unicode, py3str_as_py2str=True) == "u"  # Python 2 unicode stays str
    payload = dumps_payload("é")
    assert loads_payload(payload, py3str_as_py2str=True) == "é".encode()
    assert loads_payload(dumps_payload(b"x"), py2str_as_py3str=True) == b"x"


def test_loads_accepts_bytearray_and_memoryview() -> None:
    data = dumps({"a": [1, 2]})
    assert loads(bytearray(data)) == {"a": [1, 2]}
    assert loads(memoryview(data)) == {"a": [1, 2]}
    assert loads_payload(memoryview(data)[1:]) == {"a": [1, 2]}
    assert loads_payload(bytearray(data[1:])) == {"a": [1, 2]}


def test_nan_and_negative_zero_keep_their_bits() -> None:
    nan = loads(dumps(math.nan))
    assert math.isnan(nan)
    assert math.copysign(1.0, loads(dumps(-0.0))) == -1.0
    c = loads(dumps(complex(math.nan, -0.0)))
    assert math.isnan(c.real)
    assert math.copysign(1.0, c.imag) == -1.0


def test_dict_order_and_bool_keys_survive() -> None:
    value = {"z": 1, "a": 2, (1, 2): 3, frozenset([1]): 4, None: 5, 1.5: 6, True: 7}
    loaded = loads(dumps(value))
    assert list(loaded.items()) == list(value.items())
    assert type(next(k for k in loaded if k is True)) is bool


def test_huge_ints() -> None:
    for value in (2**4000, -(2**4000), -(2**31) - 1, -(10**30)):
        assert loads(dumps(value)) == value


class Subclass:
    pass


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyDict(dict):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize(
    "value",
    [
        MyStr("x"),
        MyInt(3),
        MyDict(),
        Subclass(),
        bytearray(b"x"),
        memoryview(b"x"),
        object,
        len,
        range(3),
        [1, 2, object()],
        {"k": {1: (2, [Subclass()])}},
        {MyStr("k"): 1},
    ],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_types_raise_dump_error_naming_the_type(value: Any) -> None:
    with pytest.raises(DumpError, match=r"can't serialize <class '"):
        dumps(value)


def test_exact_type_matching_for_standard_subclasses() -> None:
    import collections
    import enum

    class Color(enum.IntEnum):
        RED = 1

    for value in (collections.OrderedDict(a=1), collections.defaultdict(list), Color.RED):
        with pytest.raises(DumpError, match=type(value).__name__):
            dumps(value)
        with pytest.raises(DumpError):
            dumps([1, {"x": (value,)}])
    # bool is its own type, not an int subclass to refuse
    assert dumps(True) == b"\x02RQ"


def test_lone_surrogate_is_a_dump_error() -> None:
    for value in ("\ud800", ["ok"] * 10 + ["\udfff"], {"\ud800": 1}, ("a\ud800",)):
        with pytest.raises(DumpError, match="UTF-8"):
            dumps(value)


def test_int_beyond_the_interpreters_digit_limit() -> None:
    import sys

    get_limit = getattr(sys, "get_int_max_str_digits", None)
    if get_limit is None or get_limit() == 0:
        pytest.skip("this interpreter has no int/str digit limit")
    huge = 10 ** (get_limit() + 10)
    with pytest.raises(DumpError, match="set_int_max_str_digits"):
        dumps(huge)
    digits = b"1" * (get_limit() + 1)
    with pytest.raises(execnet_serial.LoadError, match="set_int_max_str_digits"):
        loads(b"\x02" + s(b"H", digits) + b"Q")


def test_only_dump_error_escapes_for_bad_values() -> None:
    bad = [object(), "\ud800", MyInt(1), {1: {2: [3, (object(),)]}}, {(1, "\ud800"): 1}]
    for value in bad:
        with pytest.raises(DumpError):
            dumps(value)
        with pytest.raises(DumpError):
            dumps_payload(value)


def test_public_surface() -> None:
    assert set(execnet_serial.__all__) == {
        "dumps",
        "loads",
        "dump",
        "load",
        "DataFormatError",
        "DumpError",
        "LoadError",
        "ChannelHook",
        "dumps_payload",
        "loads_payload",
        "dumps_payload_parts",
        "loads_payload_at",
        "__version__",
    }
    assert issubclass(execnet_serial.DumpError, execnet_serial.DataFormatError)
    assert issubclass(execnet_serial.LoadError, execnet_serial.DataFormatError)


def test_the_channel_layers_payload_functions() -> None:
    # dumps_payload_parts: the payload unjoined, parts[0] left empty for a frame header,
    # a big bytes value among the parts as it is (no copy)
    big = b"x" * 100_000
    value = ("item", [1, 2.5, None], {"k": big})
    parts = execnet_serial.dumps_payload_parts(value)
    assert parts[0] == b""
    assert b"".join(parts) == dumps_payload(value)
    assert any(part is big for part in parts)
    with pytest.raises(DumpError, match="object"):
        execnet_serial.dumps_payload_parts([object()])
    # loads_payload_at: a payload decoded where it sits among others, offsets counted
    # from the start of the data
    payload = dumps_payload(value)
    chunk = b"head" + payload + payload + b"tail"
    at = execnet_serial.loads_payload_at
    end = 4 + len(payload)
    assert at(chunk, 4, end, False, False, None) == value
    assert at(chunk, end, end + len(payload), False, False, None) == value
    with pytest.raises(LoadError, match=f"STOP at offset {end - 1} is past the payload.s end"):
        at(chunk, 4, end - 1, False, False, None)
    with pytest.raises(LoadError, match="unknown opcode b'h' at offset 0"):
        at(chunk, 0, end, False, False, None)


def test_loads_refuses_what_is_not_bytes() -> None:
    for wrong in ("\x02LQ", 5, None, [2, 76, 81]):
        with pytest.raises(TypeError, match="expected bytes, bytearray or memoryview"):
            loads(wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected bytes"):
            loads_payload(wrong)  # type: ignore[arg-type]


def test_loads_payload_decodes_in_place_between_start_and_end() -> None:
    payload = dumps_payload((1, "abc", 2.5))
    chunk = b"head" + payload + payload + b"tail"
    first = loads_payload(chunk, start=4, end=4 + len(payload))
    second = loads_payload(chunk, start=4 + len(payload), end=4 + 2 * len(payload))
    assert first == second == (1, "abc", 2.5)
    with pytest.raises(LoadError):  # a frame cut short, even with bytes after it
        loads_payload(chunk, start=4, end=3 + len(payload))
    with pytest.raises(LoadError, match="outside"):
        loads_payload(payload, start=0, end=len(payload) + 1)


@pytest.mark.parametrize("value", [b"\x00x" * 3000, "ä€x" * 3000, b"", "abc"])
def test_loads_payload_of_buffers_equals_bytes(value: object) -> None:
    payload = dumps_payload(value)
    for data in (memoryview(payload), bytearray(payload), memoryview(b"xx" + payload)[2:]):
        assert loads_payload(data) == value
        assert type(loads_payload(data)) is type(value)
    if isinstance(value, str):
        assert loads_payload(memoryview(payload), py3str_as_py2str=True) == value.encode()
    bad = bytearray(payload)
    if isinstance(value, str) and len(bad) > 1024:
        bad[5] = 0xFF  # not UTF-8
        with pytest.raises(LoadError, match="PY3STRING"):
            loads_payload(memoryview(bad))
