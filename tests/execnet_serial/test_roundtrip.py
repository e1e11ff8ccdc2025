"""Round trips of generated values, and the two encoders agreeing byte for byte."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings

from execnet_serial import dump, dumps, dumps_payload, load, loads, loads_payload
from execnet_serial._encoder_deep import encode_iteratively
from tests.execnet_serial.serial_values import same, values


@settings(max_examples=400, deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    data = dumps(value)
    assert data[:1] == b"\x02"
    assert data[-1:] == b"Q"
    assert same(loads(data), value)
    assert dumps_payload(value) == data[1:]
    assert same(loads_payload(data[1:]), value)
    f = io.BytesIO()
    dump(f, value)
    dump(f, value)
    f.seek(0)
    assert same(load(f), value)
    assert same(load(f), value)


@settings(max_examples=300, deadline=None)
@given(values)
def test_iterative_encoder_writes_the_same_bytes(value: Any) -> None:
    parts = [b"\x02"]
    encode_iteratively(value, parts, None)
    parts.append(b"Q")
    assert b"".join(parts) == dumps(value)
