"""Quick micro-benchmark of the channel layer (not a test; run it by hand).

    python tests/execnet_channel/bench_pipe_pair.py          # both ends in this process
    python tests/execnet_channel/bench_pipe_pair.py --child  # serve in a child over pipes

Reports channel round trip, 1 MiB bytes items each way and small tuples one way. The
in-process numbers share one GIL between both ends, so they are pessimistic; the real
comparison with execnet 2.1.2 lives in benchmarks/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Child, Pair


def roundtrip(gw: Any, n: int = 20000) -> float:
    channel = gw.remote_exec("for item in channel: channel.send(item)")
    for _ in range(1000):
        channel.send(1)
        channel.receive()
    start = time.perf_counter()
    for _ in range(n):
        channel.send(1)
        channel.receive()
    elapsed = time.perf_counter() - start
    channel.close()
    return elapsed / n * 1e6


def bulk_out(gw: Any, n: int = 500) -> float:
    item = b"x" * (1024 * 1024)
    channel = gw.remote_exec(
        f"size = 0\nfor _ in range({n}): size += len(channel.receive())\nchannel.send(size)"
    )
    start = time.perf_counter()
    for _ in range(n):
        channel.send(item)
    assert channel.receive() == n * len(item)
    elapsed = time.perf_counter() - start
    return n / elapsed


def _receive_rate(channel: Any, n: int) -> float:
    """Items per second received of the n the remote sends (the clock starts after the
    first one, so the remote's start is not counted)."""
    channel.receive()
    start = time.perf_counter()
    for _ in range(n - 1):
        channel.receive()
    elapsed = time.perf_counter() - start
    return (n - 1) / elapsed


def bulk_in(gw: Any, n: int = 500) -> float:
    channel = gw.remote_exec(
        f"item = b'x' * (1024 * 1024)\nfor _ in range({n}): channel.send(item)"
    )
    return _receive_rate(channel, n)


def small_out(gw: Any, n: int = 300000) -> float:
    channel = gw.remote_exec(
        f"count = 0\nfor _ in range({n}): channel.receive(); count += 1\nchannel.send(count)"
    )
    item = (1, "abc", 2.5)
    start = time.perf_counter()
    for _ in range(n):
        channel.send(item)
    assert channel.receive() == n
    elapsed = time.perf_counter() - start
    return n / elapsed


def small_in(gw: Any, n: int = 300000) -> float:
    channel = gw.remote_exec(f"item = (1, 'abc', 2.5)\nfor _ in range({n}): channel.send(item)")
    return _receive_rate(channel, n)


def main() -> None:
    child = "--child" in sys.argv
    end: Any = Child() if child else Pair("thread", "pipe")
    gw = end.gw
    try:
        where = "child process" if child else "in-process pair"
        print(f"{where} over os.pipe, {sys.version.split()[0]}")
        print(f"  round trip            {roundtrip(gw):8.1f} us")
        print(f"  1 MiB items out       {bulk_out(gw):8.0f} MiB/s")
        print(f"  1 MiB items in        {bulk_in(gw):8.0f} MiB/s")
        print(f"  small tuples out      {small_out(gw):8.0f} msgs/s")
        print(f"  small tuples in       {small_in(gw):8.0f} msgs/s")
    finally:
        end.close()


if __name__ == "__main__":
    main()
