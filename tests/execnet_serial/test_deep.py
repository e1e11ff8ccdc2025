"""Values nested far deeper than the recursion limit dump and load without crashing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from execnet_serial import DumpError, dumps, loads
from tests.parts import ROOT

DEPTH = 10_000


def nest(kind: str, depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        if kind == "list":
            value = [value]
        elif kind == "tuple":
            value = (value,)
        elif kind == "dict":
            value = {"k": value}
        elif kind == "mixed":
            value = [value] if i % 3 == 0 else ((value, 1) if i % 3 == 1 else {i: value})
        elif kind == "frozenset":
            value = frozenset([value])
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while not isinstance(value, str):
        if isinstance(value, dict):
            value = next(iter(value.values()))
        elif isinstance(value, frozenset):
            value = next(iter(value))
        else:
            value = value[0]
        depth += 1
    return depth


@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "mixed", "frozenset"])
def test_deep_values_round_trip(kind: str) -> None:
    value = nest(kind, DEPTH)
    data = dumps(value)
    assert depth_of(loads(data)) == DEPTH


def test_deep_list_bytes_are_the_standard_layout() -> None:
    data = dumps(nest("list", DEPTH))
    head = b"K\x00\x00\x00\x01F\x00\x00\x00\x00"
    assert data == b"\x02" + head * DEPTH + b"N\x00\x00\x00\x04leaf" + b"P" * DEPTH + b"Q"


def test_deep_nesting_in_a_thread_with_a_small_stack() -> None:
    # In a subprocess: if anything recursed in C, the crash must not take pytest along.
    script = textwrap.dedent(
        f"""
        import sys, threading
        sys.path.insert(0, {str(ROOT / "packages/execnet-serial/src")!r})
        from execnet_serial import dumps, loads, LoadError
        threading.stack_size(256 * 1024)
        result = []
        def work():
            value = "leaf"
            for _ in range(100000):
                value = [value]
            data = dumps(value)
            loaded = loads(data)
            t = None
            for _ in range(100000):
                t = (t,)
            tup = loads(dumps(t))
            try:
                loads(b"\\x02L" + b"@\\x00\\x00\\x00\\x01" * 100000 + b"O\\x00\\x00\\x00\\x01Q")
            except LoadError as exc:
                result.append(str(exc))
            result.append(len(data))
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        print(result)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=110, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nested more than 1000" in proc.stdout
    assert str(1 + 100000 * 10 + 9 + 100000 + 1) in proc.stdout


@pytest.mark.parametrize("target", ["this", "3.8"])
def test_deep_values_with_a_raised_recursion_limit(target: str) -> None:
    # Before 3.11 a recursive encoder could overflow the C stack when the recursion
    # limit is raised; the encoder then works iteratively.
    from parts import target_interpreter

    python = sys.executable if target == "this" else target_interpreter(target)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT / "packages/execnet-serial/src")!r})
        sys.setrecursionlimit(200000)
        from execnet_serial import dumps, loads
        value = "leaf"
        for _ in range(150000):
            value = [value, 1]
        data = dumps(value)
        print(len(data), len(loads(data)))
        """
    )
    proc = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, timeout=110, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[1] == "2"


def test_a_value_containing_itself_is_a_dump_error() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    table: dict[str, Any] = {}
    table["me"] = [table]
    for value in (looped, {"k": (looped,)}, table, [[[table]]]):
        with pytest.raises(DumpError, match="contains itself"):
            dumps(value)
    shared = [1, 2]
    assert loads(dumps([shared, shared, (shared,)])) == [[1, 2], [1, 2], ([1, 2],)]
