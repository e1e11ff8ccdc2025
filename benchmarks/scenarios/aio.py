"""execnet.aio beside the sync API over a popen gateway (issue 14's targets).

`roundtrip_*`: one small item to the gateway and back (µs per round trip, as the
roundtrip scenario). `small_send_*`/`small_receive_*`: `(int, str, float)` items one way
(items per second, as the small scenario). The `_sync` cases use the sync API, the
`_async` ones `execnet.aio` from one coroutine under `asyncio.run`; run them with
`--interleave` so both see the same load:

    python benchmarks/run.py --only aio --interleave --rounds 5

Targets (issue 14): async round trip at most 1.5x the sync one; async small-message
throughput at least 70 % of sync. execnet 2.1.2 has no asyncio API: its `_async` cases
are skipped.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from _harness import Measure, Skip, quick, run_cli
from roundtrip import ECHO
from roundtrip import roundtrip as roundtrip_sync
from small import SINK, SOURCE
from small import receive as _small_receive
from small import send as _small_send


def _aio() -> Any:
    try:
        import execnet.aio
    except ImportError:
        raise Skip("this execnet has no asyncio API (execnet.aio)") from None
    return execnet.aio


def _run(main: Callable[[], Any]) -> Measure:
    import asyncio

    result: Measure = asyncio.run(main())
    return result


def roundtrip_async(count: Optional[int] = None) -> Measure:
    aio = _aio()
    count = (2_000 if quick() else 20_000) if count is None else count

    async def main() -> Measure:
        gateway = await aio.makegateway("popen")
        try:
            channel = gateway.remote_exec(ECHO)
            for i in range(200):
                await channel.send(i)
                await channel.receive()
            send, receive = channel.send, channel.receive
            start = time.perf_counter()
            for i in range(count):
                await send(i)
                await receive()
            elapsed = time.perf_counter() - start
            channel.close()
            await channel.waitclose()
        finally:
            gateway.exit()
            await gateway.join()
        return Measure(elapsed, "roundtrip", count)

    return _run(main)


def _small_count() -> int:
    return 20_000 if quick() else 200_000


def small_send_sync() -> Measure:
    return _small_send()


def small_receive_sync() -> Measure:
    return _small_receive()


async def _one_way(aio: Any, source: str, count: int, receiving: bool) -> Measure:
    """`count` small tuples one way over a fresh popen gateway (see scenarios/small.py)."""
    gateway = await aio.makegateway("popen")
    try:
        channel = gateway.remote_exec(source)
        await channel.send(count)
        start = time.perf_counter()
        if receiving:
            await channel.send("go")
            receive = channel.receive
            last = None
            for _ in range(count):
                last = await receive()
            assert last == (count - 1, "item", 1.5), last
        else:
            send = channel.send
            for i in range(count):
                await send((i, "item", 1.5))
            got = await channel.receive()
            assert got == count, got
        elapsed = time.perf_counter() - start
        await channel.waitclose()
    finally:
        gateway.exit()
        await gateway.join()
    return Measure(elapsed, "msg", count)


def small_send_async() -> Measure:
    aio = _aio()
    return _run(lambda: _one_way(aio, SINK, _small_count(), receiving=False))


def small_receive_async() -> Measure:
    aio = _aio()
    return _run(lambda: _one_way(aio, SOURCE, _small_count(), receiving=True))


CASES = {
    "roundtrip_sync": roundtrip_sync,
    "roundtrip_async": roundtrip_async,
    "small_send_sync": small_send_sync,
    "small_send_async": small_send_async,
    "small_receive_sync": small_receive_sync,
    "small_receive_async": small_receive_async,
}

if __name__ == "__main__":
    run_cli(CASES)
