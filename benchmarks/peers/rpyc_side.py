"""The rpyc side of the peer comparison: classic mode over a subprocess (an oracle: runs
in its own venv only).

    python benchmarks/peers/rpyc_side.py --case roundtrip --repeat 3

A worker is `rpyc.utils.classic.connect_subproc()`: the venv's `rpyc_classic.py` server
started with `-m stdio`, spoken to over its pipes. Every case first makes one untimed
connection, kept open while it runs (the same warm start the other sides get).

What each case does with rpyc's public API:
- start_*: connect, `conn.modules.os.getpid()` answered, then `conn.close()` and the
  server process waited for;
- roundtrip: a remote `echo` function (defined with `conn.execute`) called through its
  netref, one synchronous call per item;
- bulk_send, small_send: rpyc has no one-way message; each item is an asynchronous call
  (`rpyc.async_`) of a remote `sink`, with at most WINDOW calls unanswered (rpyc reads
  the answers only while it waits for one: an unbounded stream of calls fills the pipe
  with answers and deadlocks), then one synchronous call returns the count;
- workers_8: WORKERS connections made one after another, one call on each, all closed.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
from typing import Any, Callable, Deque, Dict, Iterable, Iterator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios"))

import rpyc
from _harness import Measure, Skip, peak_rss_mib, run_cli
from _work import BULK_MIB, MANY_WORKERS, MIB, ROUNDTRIPS, SMALL_ITEMS, WORKERS
from rpyc.utils import classic

WINDOW = 256  # unanswered asynchronous calls at most: 256 answers fit a pipe's buffer
SERVER = os.path.join(os.path.dirname(sys.executable), "rpyc_classic.py")

REMOTE = """
import resource
received = [0, 0]
def echo(item):
    return item
def sink(item):
    received[0] += 1
    if isinstance(item, bytes):
        received[1] += len(item)
def totals():
    return tuple(received)
def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
"""


def connect() -> Any:
    if not os.path.exists(SERVER):
        raise Skip(f"no rpyc classic server script at {SERVER}")
    return classic.connect_subproc(SERVER)


def close(conn: Any) -> None:
    conn.close()
    conn.proc.wait()


@contextlib.contextmanager
def warm() -> Iterator[None]:
    """One connection, already answering, open for the block (untimed)."""
    companion = connect()
    try:
        assert isinstance(companion.modules.os.getpid(), int)
        yield
    finally:
        close(companion)


@contextlib.contextmanager
def worker() -> Iterator[Any]:
    """A connection to a new classic server with REMOTE's functions defined there."""
    with warm():
        conn = connect()
        try:
            conn.execute(REMOTE)
            yield conn
        finally:
            close(conn)


def start(answered: bool) -> Measure:
    with warm():
        begin = time.perf_counter()
        conn = connect()
        assert isinstance(conn.modules.os.getpid(), int)
        first = time.perf_counter()
        close(conn)
        end = time.perf_counter()
    return Measure((first if answered else end) - begin, "gateway")


def roundtrip() -> Measure:
    with worker() as conn:
        echo = conn.namespace["echo"]
        for i in range(200):  # warm up both sides
            echo(i)
        begin = time.perf_counter()
        for i in range(ROUNDTRIPS):
            echo(i)
        elapsed = time.perf_counter() - begin
    return Measure(elapsed, "roundtrip", ROUNDTRIPS)


def _one_way(items: Iterable[Any], count: int, unit: str) -> Measure:
    with worker() as conn:
        sink = rpyc.async_(conn.namespace["sink"])
        totals = conn.namespace["totals"]
        pending: Deque[Any] = collections.deque()
        begin = time.perf_counter()
        for item in items:
            pending.append(sink(item))
            if len(pending) > WINDOW:
                pending.popleft().wait()
        received, size = totals()
        elapsed = time.perf_counter() - begin
        assert received == count, received
        extra = {}
        if unit == "MiB":
            assert size == count * MIB, size
            extra = {"rss_local_mib": peak_rss_mib(),
                     "rss_remote_mib": conn.namespace["peak_rss_mib"]()}  # fmt: skip
    return Measure(elapsed, unit, count, extra)


def bulk_send() -> Measure:
    item = b"s" * MIB
    return _one_way((item for _ in range(BULK_MIB)), BULK_MIB, "MiB")


def small_send() -> Measure:
    return _one_way(((i, "item", 1.5) for i in range(SMALL_ITEMS)), SMALL_ITEMS, "msg")


def workers(count: int = WORKERS) -> Measure:
    with warm():
        begin = time.perf_counter()
        conns = [connect() for _ in range(count)]
        made = time.perf_counter()
        try:
            assert len({conn.modules.os.getpid() for conn in conns}) == count
            executed = time.perf_counter()
        finally:
            for conn in conns:
                conn.close()
            for conn in conns:
                conn.proc.wait()
        end = time.perf_counter()
    extra = {"make_s": made - begin, "exec_s": executed - made, "terminate_s": end - executed}
    return Measure(end - begin, "group", 1, extra)


CASES: Dict[str, Callable[[], Measure]] = {
    "start_first_answer": lambda: start(answered=True),
    "start_to_exit": lambda: start(answered=False),
    "roundtrip": roundtrip,
    "bulk_send": bulk_send,
    "small_send": small_send,
    "workers_8": workers,
    "workers_32": lambda: workers(MANY_WORKERS),
}

if __name__ == "__main__":
    run_cli(CASES)
