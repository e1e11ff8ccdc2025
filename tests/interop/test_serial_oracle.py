"""execnet_serial against the original execnet 2.1.2, run as a black box.

One oracle subprocess serves the whole module: for each request it loads our bytes
with its loads and dumps the value again with its dumps. Hypothesis drives the corpus,
so a mismatch is shrunk to a minimal value.
"""

from __future__ import annotations

import struct
import subprocess
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from parts import oracle_python

from execnet_serial import dumps, loads
from tests.execnet_serial.serial_values import oracle_values, same, values

SERVER = r"""
import struct, sys, execnet
read, write = sys.stdin.buffer.read, sys.stdout.buffer
def reply(tag, body):
    write.write(struct.pack(">ci", tag, len(body)) + body)
    write.flush()
while True:
    head = read(5)
    if len(head) < 5:
        break
    kind, size = struct.unpack(">ci", head)
    data = read(size)
    try:
        value = execnet.loads(data)
        if kind == b"D":
            reply(b"K", execnet.dumps(value))
        else:
            reply(b"K", repr(value).encode())
    except Exception as exc:
        reply(b"E", ("%s: %s" % (type(exc).__name__, exc)).encode())
"""


class Oracle:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [oracle_python(), "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def ask(self, kind: bytes, data: bytes) -> bytes:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(struct.pack(">ci", kind, len(data)) + data)
        self.proc.stdin.flush()
        tag, size = struct.unpack(">ci", self.proc.stdout.read(5))
        body = self.proc.stdout.read(size)
        if tag != b"K":
            raise AssertionError(f"the oracle failed: {body.decode()}")
        return body

    def redump(self, data: bytes) -> bytes:
        """execnet.dumps(execnet.loads(data)) in the oracle."""
        return self.ask(b"D", data)

    def repr_of(self, data: bytes) -> str:
        return self.ask(b"R", data).decode()

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    server = Oracle()
    yield server
    server.close()


SETTINGS = settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(oracle_values)
def test_same_bytes_both_ways(oracle: Oracle, value: Any) -> None:
    ours = dumps(value)
    theirs = oracle.redump(ours)  # their loads of our bytes, then their dumps
    # Both dump the value as rebuilt from the same stream (sets in the same order).
    assert dumps(loads(ours)) == theirs
    assert same(loads(theirs), value)
    if not _has_multi_sets(value):
        assert ours == theirs


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values)
def test_they_load_everything_we_write(oracle: Oracle, value: Any) -> None:
    # Including ints below -2**31, which only we can dump (as LONGINT).
    theirs = oracle.repr_of(dumps(value))
    if not _has_multi_sets(value):  # set order differs between processes
        assert theirs == repr(loads(dumps(value)))


def test_ints_across_the_int4_boundaries(oracle: Oracle) -> None:
    edges = [-(2**31) + 1, -(2**31), -1, 0, 1, 2**31 - 1, 2**31, 2**63, 10**40]
    assert oracle.redump(dumps(edges)) == dumps(edges)
    assert oracle.repr_of(dumps(-(2**31) - 1)) == str(-(2**31) - 1)
    assert oracle.repr_of(dumps(-(10**40))) == str(-(10**40))


def _has_multi_sets(value: Any) -> bool:
    todo = [value]
    while todo:
        item = todo.pop()
        if type(item) in (set, frozenset):
            if len(item) > 1:
                return True
            todo.extend(item)
        elif type(item) in (list, tuple):
            todo.extend(item)
        elif type(item) is dict:
            todo.extend(item.keys())
            todo.extend(item.values())
    return False
