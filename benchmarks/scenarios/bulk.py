"""Bulk bytes: 1 GiB as 1 MiB `bytes` items over a popen gateway, each direction.

(socket.py runs the same over socket gateways.)

`send`: this side sends 1024 items, the remote receives them and answers with the byte
count. `receive`: the remote sends 1024 items, this side receives them. Reported in MiB/s
(higher is better), with the peak RSS of both processes in `extra`
(`rss_local_mib`, `rss_remote_mib`): a transport that buffers the whole stream shows
up there.
"""

from __future__ import annotations

import time
from typing import Optional

from _harness import Measure, peak_rss_mib, quick, remote_peak_rss_mib, run_cli

import execnet

MIB = 1024 * 1024

SINK = """
count = channel.receive()
total = 0
for _ in range(count):
    total += len(channel.receive())
channel.send(total)
"""

SOURCE = """
count, size = channel.receive()
item = b"r" * size
channel.receive()  # go
for _ in range(count):
    channel.send(item)
"""


def _count() -> int:
    return 64 if quick() else 1024


def _finish(gateway: execnet.Gateway, elapsed: float, count: int) -> Measure:
    extra = {"rss_local_mib": peak_rss_mib(), "rss_remote_mib": remote_peak_rss_mib(gateway)}
    return Measure(elapsed, "MiB", float(count), extra)


def send(spec: str = "popen", count: Optional[int] = None) -> Measure:
    """`count` MiB to a gateway made with `spec` (also used by peers/execnet_side.py)."""
    count = _count() if count is None else count
    item = b"s" * MIB
    gateway = execnet.makegateway(spec)
    try:
        channel = gateway.remote_exec(SINK)
        channel.send(count)
        start = time.perf_counter()
        for _ in range(count):
            channel.send(item)
        total = channel.receive()
        elapsed = time.perf_counter() - start
        assert total == count * MIB, total
        channel.waitclose()
        return _finish(gateway, elapsed, count)
    finally:
        gateway.exit()
        gateway.join()


def receive(spec: str = "popen") -> Measure:
    count = _count()
    gateway = execnet.makegateway(spec)
    try:
        channel = gateway.remote_exec(SOURCE)
        channel.send((count, MIB))
        start = time.perf_counter()
        channel.send("go")
        total = 0
        for _ in range(count):
            total += len(channel.receive())
        elapsed = time.perf_counter() - start
        assert total == count * MIB, total
        channel.waitclose()
        return _finish(gateway, elapsed, count)
    finally:
        gateway.exit()
        gateway.join()


CASES = {"send": send, "receive": receive}

if __name__ == "__main__":
    run_cli(CASES)
