"""Invalid input: LoadError naming the opcode and offset, never another exception."""

from __future__ import annotations

import struct

import pytest

from execnet_serial import LoadError, dumps, loads, loads_payload


def i4(n: int) -> bytes:
    return struct.pack(">i", n)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"wrong format version b'' at offset 0"),
        (b"\x01LQ", r"wrong format version b'\\x01' at offset 0"),
        (b"\x02", r"data ends at offset 1 before STOP"),
        (b"\x02L", r"data ends at offset 2 before STOP"),
        (b"\x02Z", r"unknown opcode b'Z' at offset 1"),
        (b"\x02L\x00Q", r"unknown opcode b'\\x00' at offset 2"),
        (b"\x02F\x00", r"INT at offset 1: payload runs past the end"),
        (b"\x02D\x00\x00Q", r"FLOAT at offset 1: payload runs past the end"),
        (b"\x02T" + b"\x00" * 9 + b"Q", r"COMPLEX at offset 1"),
        (b"\x02N" + i4(5) + b"abQ", r"PY3STRING at offset 1: declares length 5, 3 bytes follow"),
        (b"\x02A" + i4(-1) + b"Q", r"BYTES at offset 1: declares length -1"),
        (b"\x02K" + i4(10**6) + b"Q", r"NEWLIST at offset 1: declares length 1000000"),
        (b"\x02K" + i4(-3) + b"Q", r"NEWLIST at offset 1: declares length -3"),
        (b"\x02L@" + i4(2) + b"Q", r"BUILDTUPLE at offset 2: needs 2 values, the stack holds 1"),
        (b"\x02L@" + i4(-1) + b"Q", r"BUILDTUPLE at offset 2: needs -1 values"),
        (b"\x02LO" + i4(3) + b"Q", r"SET at offset 2: needs 3 values"),
        (b"\x02LE" + i4(3) + b"Q", r"FROZENSET at offset 2: needs 3 values"),
        (b"\x02LLPQ", r"SETITEM at offset 3: too few values on the stack"),
        (b"\x02JLLLPQ", r"SETITEM at offset 5: TypeError: 'NoneType' object does not support"),
        (b"\x02JJLPQ", r"SETITEM at offset 4: TypeError: unhashable type: 'dict'"),
        (b"\x02JK" + i4(0) + b"LPQ", r"SETITEM at offset 8: TypeError: unhashable type: 'list'"),
        (b"\x02K" + i4(1) + b"F" + i4(5) + b"LPQ", r"SETITEM at offset 12: IndexError"),
        (b"\x02K" + i4(1) + b"N" + i4(0) + b"LPQ", r"SETITEM at offset 12: TypeError"),
        (b"\x02JO" + i4(0) + b"O" + i4(1) + b"Q", r"SET at offset 7: TypeError: unhashable"),
        (b"\x02Q", r"STOP at offset 1 with 0 values on the stack \(must be exactly 1\)"),
        (b"\x02LLQ", r"STOP at offset 3 with 2 values on the stack"),
        (b"\x02LQ\x00", r"1 bytes after STOP at offset 2"),
        (b"\x02N" + i4(2) + b"\xff\xfeQ", r"PY3STRING at offset 1: UnicodeDecodeError"),
        (b"\x02H" + i4(3) + b"1x2Q", r"LONGINT at offset 1: ValueError: not a decimal integer"),
        (b"\x02H" + i4(3) + b" 12Q", r"LONGINT at offset 1: ValueError"),
        (b"\x02H" + i4(0) + b"Q", r"LONGINT at offset 1: ValueError"),
        (b"\x02B" + i4(1) + b"Q", r"CHANNEL at offset 1: channels can only be loaded through"),
    ],
)
def test_load_errors_name_the_opcode_and_offset(data: bytes, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        loads(data)


def test_payload_errors_count_offsets_from_the_payload_start() -> None:
    with pytest.raises(LoadError, match=r"unknown opcode b'Z' at offset 1"):
        loads_payload(b"LZ")
    with pytest.raises(LoadError, match=r"data ends at offset 1 before STOP"):
        loads_payload(b"L")
    with pytest.raises(LoadError, match=r"unknown opcode b'\\x02' at offset 0"):
        loads_payload(dumps(1))  # a version byte is not an opcode


def test_int_list_lookalikes_take_the_general_path() -> None:
    # The decoder recognises lists of ints by their exact layout; near misses must still
    # decode by the general rules (or fail as they would there).
    def item(i: int, v: int) -> bytes:
        return b"F" + i4(i) + b"F" + i4(v) + b"P"

    n = 10
    good = b"K" + i4(n) + b"".join(item(i, i * 3) for i in range(n)) + b"Q"
    assert loads_payload(good) == [i * 3 for i in range(n)]
    swapped = b"K" + i4(n) + item(1, 7) + item(0, 8) + b"".join(item(i, 0) for i in range(2, n))
    assert loads_payload(swapped + b"Q") == [8, 7] + [0] * (n - 2)
    repeated = b"K" + i4(n) + b"".join(item(0, i) for i in range(n)) + b"Q"
    assert loads_payload(repeated) == [n - 1] + [None] * (n - 1)
    short = b"K" + i4(n) + b"".join(item(i, i) for i in range(n - 1)) + b"Q"
    assert loads_payload(short) == [*range(n - 1), None]
    inside_tuple = b"K" + i4(n) + b"".join(item(i, i) for i in range(n)) + b"L@" + i4(2) + b"Q"
    assert loads_payload(inside_tuple) == (list(range(n)), None)
    bad_index = b"K" + i4(n) + b"".join(item(i + 1, i) for i in range(n)) + b"Q"
    with pytest.raises(LoadError, match="SETITEM"):
        loads_payload(bad_index)


def test_truncated_streams_end_with_load_error() -> None:
    data = dumps({"a": [1, 2.5, "x", (None, True)], "b": {1, 2}, "c": b"z" * 40})
    for cut in range(len(data)):
        with pytest.raises(LoadError):
            loads(data[:cut])


def test_tuples_nested_too_deep_to_hash_are_refused() -> None:
    depth = 5000  # deep enough that hashing could exhaust a small thread stack
    nested = b"L" + (b"@" + i4(1)) * depth
    with pytest.raises(LoadError, match="nested more than 1000 levels"):
        loads_payload(nested + b"O" + i4(1) + b"Q")
    with pytest.raises(LoadError, match="nested more than 1000 levels"):
        loads_payload(b"J" + nested + b"LPQ")
    # as a plain value (never hashed) it loads
    value = loads_payload(nested + b"Q")
    for _ in range(depth):
        value = value[0]
    assert value is None
    # many shallow tuple keys are fine
    many = b"J" + b"".join(b"F" + i4(i) + b"@" + i4(1) + b"LP" for i in range(3000)) + b"Q"
    assert len(loads_payload(many)) == 3000
