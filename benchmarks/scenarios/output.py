"""Output forwarding (issue 13): how fast printed lines reach the caller, and what an
idle forwarding costs a channel round trip and a gateway's start.

- ``forwarded_lines``: the remote prints 32 MiB (4 MiB quick) of 100-byte lines; the
  clock runs until exit()/join() returned, i.e. until the caller's callback had every
  line (MiB/s). execnet 2.1.2 does not forward output: skipped there.
- ``roundtrip_forwarding_on`` / ``roundtrip_forwarding_off``: the roundtrip scenario's
  20,000 echoes over ``popen//forward_output`` and over plain ``popen`` (µs per round
  trip; the original ignores the unknown key, so both columns run the same code there).
- ``start_forwarding_on``: one gateway's life (makegateway, one answer, exit) with
  forwarding on; compare with the startup scenario's ``popen``.
"""

from __future__ import annotations

import time
from typing import Optional

from _harness import Measure, Skip, quick, run_cli, time_gateway_cycle
from roundtrip import roundtrip

import execnet

LINE = "x" * 99  # print adds the newline: 100 bytes per line


def forwarded_lines(mib: Optional[int] = None) -> Measure:
    if mib is None:
        mib = 4 if quick() else 32
    lines = mib * 1024 * 1024 // 100
    gateway = execnet.makegateway("popen")
    if not hasattr(gateway, "forward_output"):
        gateway.exit()
        gateway.join()
        raise Skip("this execnet does not forward output")
    received = [0]

    def count(stream: str, data: bytes) -> None:
        received[0] += len(data)

    gateway.forward_output(count)
    gateway.remote_exec("channel.send(1)").receive()  # forwarding is on, the remote warm
    start = time.perf_counter()
    gateway.remote_exec(f"for _ in range({lines}): print({LINE!r})").waitclose()
    gateway.exit()
    gateway.join()
    elapsed = time.perf_counter() - start
    assert received[0] == lines * 100, received[0]
    return Measure(elapsed, "MiB", lines * 100 / (1024 * 1024))


CASES = {
    "forwarded_lines": forwarded_lines,
    "roundtrip_forwarding_on": lambda: roundtrip("popen//forward_output"),
    "roundtrip_forwarding_off": lambda: roundtrip("popen"),
    "start_forwarding_on": lambda: Measure(time_gateway_cycle("popen//forward_output")),
}

if __name__ == "__main__":
    run_cli(CASES)
