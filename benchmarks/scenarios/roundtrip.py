"""Channel round trip: one small item to a popen gateway and back, 20,000 times.

Reported per round trip (µs, lower is better). The gateway is made and warmed up
before the clock starts, so this is the cost of send + remote receive + remote send +
receive through the real pipe and both receiver threads.
"""

from __future__ import annotations

import time
from typing import Optional

from _harness import Measure, quick, run_cli

import execnet

ECHO = """
for item in channel:
    channel.send(item)
"""


def roundtrip(spec: str = "popen", count: Optional[int] = None) -> Measure:
    """`count` echoes over a gateway made with `spec` (also used by peers/execnet_side.py)."""
    if count is None:
        count = 2_000 if quick() else 20_000
    gateway = execnet.makegateway(spec)
    try:
        channel = gateway.remote_exec(ECHO)
        for i in range(200):  # warm up both sides
            channel.send(i)
            channel.receive()
        send, receive = channel.send, channel.receive
        start = time.perf_counter()
        for i in range(count):
            send(i)
            receive()
        elapsed = time.perf_counter() - start
        channel.close()
        channel.waitclose()
    finally:
        gateway.exit()
        gateway.join()
    return Measure(elapsed, "roundtrip", count)


CASES = {"roundtrip": roundtrip}

if __name__ == "__main__":
    run_cli(CASES)
