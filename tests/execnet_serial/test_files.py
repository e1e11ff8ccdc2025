"""dump/load over binary files: one value per call, several values per file."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from execnet_serial import LoadError, dump, dumps, load


def test_several_values_follow_each_other(tmp_path: Path) -> None:
    path = tmp_path / "values"
    values = [1, "two", [3.0, None], {"four": (4, b"4")}, {5}, frozenset([6]), 2**70, True]
    with path.open("wb") as f:
        for value in values:
            dump(f, value)
    assert path.read_bytes() == b"".join(dumps(v) for v in values)
    with path.open("rb") as f:
        assert [load(f) for _ in values] == values
        with pytest.raises(EOFError):
            load(f)


def test_load_reads_no_byte_beyond_the_value() -> None:
    f = io.BytesIO(dumps(["a", "b"]) + b"rest")
    assert load(f) == ["a", "b"]
    assert f.read() == b"rest"


def test_load_string_options() -> None:
    f = io.BytesIO(dumps("é") + b"\x02" + b"M\x00\x00\x00\x01\xe9Q")
    assert load(f, py3str_as_py2str=True) == "é".encode()
    assert load(f, py2str_as_py3str=True) == "é"


def test_load_through_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        dump(writer, {"x": list(range(100))})
        writer.flush()
        assert load(reader) == {"x": list(range(100))}


def test_stream_ending_inside_a_value_is_eof_error() -> None:
    data = dumps({"a": [1, "x" * 100]})
    for cut in range(1, len(data)):
        with pytest.raises(EOFError):
            load(io.BytesIO(data[:cut]))
    with pytest.raises(EOFError):
        load(io.BytesIO(b""))


def test_invalid_streams_are_load_errors() -> None:
    for data in (b"\x01LQ", b"\x02ZQ", b"\x02LLQ", b"\x02N\xff\xff\xff\xffQ"):
        with pytest.raises(LoadError):
            load(io.BytesIO(data))


def test_hostile_length_reads_only_what_is_there() -> None:
    # 2 GiB declared, 10 bytes present: EOFError, without allocating the declared size.
    f = io.BytesIO(b"\x02A" + struct.pack(">i", 2**31 - 1) + b"x" * 10)
    with pytest.raises(EOFError):
        load(f)
