"""Hostile input: truncated, mutated and random bytes raise only LoadError.

The mutation fuzzer runs 300,000 cases per run (seeded, so a failure
reproduces); hypothesis adds generated opcode soups. Any other exception, a hang or a
large allocation is a failure.
"""

from __future__ import annotations

import contextlib
import io
import random
import struct
import tracemalloc
from typing import Any, Callable, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_serial import LoadError, dumps, load, loads, loads_payload
from tests.execnet_serial.serial_values import values

CORPUS: List[Any] = [
    None,
    [1, 2, 3],
    list(range(12)),
    ["a", "bb", "ccc"] * 3,
    [0.5] * 9,
    {"nodeid": "t.py::x", "location": ("t.py", 3, "x"), "kw": {"x": 1}, "ok": True},
    {(1, 2): frozenset([1, 2]), 3: {4, 5}, "b": b"\x00\xff", "c": 1j, "n": None},
    [2**40, -(2**40), 2**31, -(2**31) - 1, 1.5, -0.0, False],
    ((((),),),),
    [[[]], {}, set(), frozenset()],
    "é" * 10,
]
VALID = [dumps(v) for v in CORPUS] + [
    b"\x02G\x00\x00\x00\x05Q",
    b"\x02I\x00\x00\x00\x0212Q",
    b"\x02S\x00\x00\x00\x01aQ",
    b"\x02M\x00\x00\x00\x01\xe9Q",
]
OPCODES = b"@ABCDEFGHIJKLMNOPQRST"


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if kind == 0 and buf:  # flip bits
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif kind == 1:  # insert a byte, often an opcode
            buf[pos:pos] = bytes(
                [rng.choice(OPCODES) if rng.random() < 0.7 else rng.randrange(256)]
            )
        elif kind == 2 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 4)]
        elif kind == 3:  # truncate
            del buf[pos:]
        elif kind == 4 and len(buf) > 5:  # overwrite an int4 with an edge value
            edge = rng.choice([0, 1, -1, 2**31 - 1, -(2**31), 255, 10**6])
            buf[pos % (len(buf) - 4) : pos % (len(buf) - 4) + 4] = struct.pack(">i", edge)
        else:  # splice in a piece of another valid stream
            other = rng.choice(VALID)
            start = rng.randrange(len(other))
            buf[pos:pos] = other[start : start + rng.randint(1, 12)]
    return bytes(buf)


def check(load: Callable[[bytes], Any], data: bytes) -> None:
    with contextlib.suppress(LoadError):
        load(data)


def test_mutation_fuzz() -> None:
    rng = random.Random(20261125)
    cases = 0
    while cases < 300_000:  # a pathological (e.g. quadratic) case shows as pytest's timeout
        data = mutate(rng, rng.choice(VALID))
        check(loads, data)
        check(loads_payload, data[1:])
        cases += 2
        if rng.random() < 0.1:  # the stream reader of load(file)
            with contextlib.suppress(LoadError, EOFError):
                load(io.BytesIO(data))
            cases += 1
        if rng.random() < 0.05:
            check(loads, b"\x02" + bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
            cases += 1


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([bytes([op]) for op in OPCODES]),
            st.sampled_from([struct.pack(">i", n) for n in (0, 1, 2, 3, -1, 2**31 - 1)]),
            st.binary(max_size=6),
        ),
        max_size=40,
    )
)
def test_opcode_soup(pieces: List[bytes]) -> None:
    data = b"".join(pieces)
    check(loads_payload, data)
    check(loads_payload, data + b"Q")
    check(loads, b"\x02" + data + b"Q")


def test_declared_lengths_do_not_allocate() -> None:
    hostile = [
        b"\x02K\x7f\xff\xff\xffQ",  # a list of 2**31-1 Nones declared
        b"\x02K\x00\x0f\xff\xff" + b"L" * 100 + b"Q",
        b"\x02A\x7f\xff\xff\xff" + b"x" * 100,
        b"\x02N\x7f\xff\xff\xff" + b"x" * 100,
        b"\x02H\x7f\xff\xff\xff" + b"1" * 100,
        b"\x02" + b"L" * 1000 + b"@\x7f\xff\xff\xffQ",
        b"\x02" + b"L" * 1000 + b"O\x7f\xff\xff\xffQ",
    ]
    tracemalloc.start()
    try:
        for data in hostile:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            check(loads, data)
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < 64 * len(data) + 100_000, (data[:10], peak)
    finally:
        tracemalloc.stop()


def test_newlist_is_bounded_by_the_bytes_present() -> None:
    # NEWLIST n builds n Nones only when at least n bytes follow (a real list of n items
    # takes 11 or more per item), so the allocation stays proportional to the input.
    with pytest.raises(LoadError, match="NEWLIST at offset 1: declares length 2, 1 bytes follow"):
        loads(b"\x02K\x00\x00\x00\x02Q")
    assert loads(b"\x02K\x00\x00\x00\x02LL@\x00\x00\x00\x02@\x00\x00\x00\x02Q") == (
        [None, None],
        (None, None),
    )


@settings(max_examples=500, deadline=None)
@given(
    values,
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.booleans()), max_size=4),
    st.integers(0, 10**6),
)
def test_generated_values_mutated(value: Any, edits: List[Any], cut: int) -> None:
    data = bytearray(dumps(value))
    for where, byte, insert in edits:
        index = where % (len(data) + 1)
        if insert:
            data[index:index] = bytes([byte])
        elif index < len(data):
            data[index] = byte
    check(loads, bytes(data))
    check(loads, bytes(data[: cut % (len(data) + 1)]))


def test_many_large_newlists_do_not_allocate_quadratically() -> None:
    # Each NEWLIST alone fits the bytes left; together they would declare 2**16 items per
    # 5 input bytes. The decoder keeps one budget for all lists.
    data = b"\x02" + b"K\x00\x01\x00\x00" * 50_000 + b"Q"
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match="already declared more items than the input"):
            loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(data) + 1_000_000
    nested = [[[1, 2, 3]] * 50] * 50  # valid data stays within the budget
    assert loads(dumps(nested)) == nested
