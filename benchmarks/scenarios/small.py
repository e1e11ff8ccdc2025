"""Small tuples one way: 200,000 `(int, str, float)` items over a popen gateway.

`send`: this side sends, the remote counts and answers once it has all of them.
`receive`: the remote sends, this side receives them all. Reported as items per second
(higher is better); the clock includes the final acknowledgement, so every item has
crossed the pipe and been decoded on the far side.
"""

from __future__ import annotations

import time
from typing import Optional

from _harness import Measure, quick, run_cli

import execnet

SINK = """
count = channel.receive()
for _ in range(count):
    channel.receive()
channel.send(count)
"""

SOURCE = """
count = channel.receive()
channel.receive()  # go
for i in range(count):
    channel.send((i, "item", 1.5))
"""


def _count() -> int:
    return 20_000 if quick() else 200_000


def send(spec: str = "popen", count: Optional[int] = None) -> Measure:
    """`count` tuples to a gateway made with `spec` (also used by peers/execnet_side.py)."""
    count = _count() if count is None else count
    gateway = execnet.makegateway(spec)
    try:
        channel = gateway.remote_exec(SINK)
        channel.send(count)
        start = time.perf_counter()
        for i in range(count):
            channel.send((i, "item", 1.5))
        got = channel.receive()
        elapsed = time.perf_counter() - start
        assert got == count, got
        channel.waitclose()
    finally:
        gateway.exit()
        gateway.join()
    return Measure(elapsed, "msg", count)


def receive() -> Measure:
    count = _count()
    gateway = execnet.makegateway("popen")
    try:
        channel = gateway.remote_exec(SOURCE)
        channel.send(count)
        start = time.perf_counter()
        channel.send("go")
        last = None
        for _ in range(count):
            last = channel.receive()
        elapsed = time.perf_counter() - start
        assert last == (count - 1, "item", 1.5), last
        channel.waitclose()
    finally:
        gateway.exit()
        gateway.join()
    return Measure(elapsed, "msg", count)


CASES = {"send": send, "receive": receive}

if __name__ == "__main__":
    run_cli(CASES)
