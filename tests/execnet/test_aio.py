"""execnet.aio with real gateways (popen, ssh, socket): the issue's example and every rule.

Each test runs its coroutine with plain ``asyncio.run`` (uvloop is not installed), and
the example once more under anyio's asyncio backend.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, List

import parts
import pytest

import execnet
import execnet.aio
from execnet.aio import AsyncChannel, AsyncGateway, Group

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0  # seconds: a bound that only a hang reaches


@pytest.fixture(params=["popen", "ssh", "socket"])
def spec(request: pytest.FixtureRequest) -> str:
    """A spec string reaching a real interpreter the three common ways."""
    if request.param == "popen":
        return "popen"
    if request.param == "ssh":
        sshd = request.getfixturevalue("sshd")
        return f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}"
    server = request.getfixturevalue("servers")()
    return f"socket={server.address}"


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(main())


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Let the loop run until ``condition()`` holds (a bound only a hang reaches)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def waiting(channels: List[AsyncChannel], gateways: List[AsyncGateway[Any]]) -> int:
    """Coroutines waiting in receive()/waitclose() on ``channels``: registered for a
    wake-up, or reading the stream for the others (the lent role, one per gateway)."""
    readers = sum(gw.gateway._role.locked() and gw.gateway._lent for gw in gateways)
    return sum(len(ch._waiters.futures) for ch in channels) + readers


def children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return found


# -- the example -------------------------------------------------------------


async def example(spec: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    dst = tmp_path / "dst"
    async with execnet.aio.Group() as group:  # terminates on exit
        gw = await group.makegateway(spec)
        assert isinstance(gw, AsyncGateway)
        assert gw in group
        assert group[gw.id] is gw
        assert list(group) == [gw]
        ch = gw.remote_exec("channel.send(channel.receive() * 2)")
        await ch.send(21)
        assert await ch.receive(timeout=5) == 42
        items = [item async for item in gw.remote_exec("for i in range(3): channel.send(i)")]
        assert items == [0, 1, 2]
        await ch.waitclose()
        status = await gw.remote_status()
        assert status.execmodel in ("thread", "main_thread_only")
        assert status.numexecuting == 0
        await execnet.aio.RSync(src, verbose=False).add_target(gw, dst).send()
        assert (dst / "pkg" / "mod.py").read_text() == "x = 1\n"
        info = await gw.remote_info()
        assert info["pid"] != os.getpid()
        gateways = [g.gateway for g in group]
    assert len(group) == 0
    assert all(not g.hasreceiver() for g in gateways)


def test_example(spec: str, tmp_path: Path) -> None:
    run(lambda: example(spec, tmp_path))


def test_example_under_anyio(tmp_path: Path) -> None:
    anyio = pytest.importorskip("anyio")
    anyio.run(example, "popen", tmp_path, backend="asyncio")


def test_module_level_makegateway_uses_the_default_group() -> None:
    async def main() -> None:
        gw = await execnet.aio.makegateway("popen")
        try:
            assert gw.gateway in execnet.default_group
            assert await gw.remote_exec("channel.send(7)").receive(WAIT) == 7
        finally:
            gw.exit()
            await gw.join(WAIT)
        assert not gw.hasreceiver()

    run(main)


# -- timeouts and cancellation -------------------------------------------------------


def test_receive_timeout_and_waitclose_timeout(spec: str) -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            ch = gw.remote_exec("channel.send(channel.receive())")
            with pytest.raises(execnet.TimeoutError) as info:
                await ch.receive(timeout=0.05)
            assert info.type is execnet.TimeoutError is ch.TimeoutError
            with pytest.raises(execnet.TimeoutError):
                await ch.waitclose(timeout=0.05)
            await ch.send("late")
            assert await ch.receive(WAIT) == "late"  # the timeouts took nothing
            await ch.waitclose(WAIT)

    run(main)


def test_cancelled_receive_leaves_the_item_for_the_next(spec: str) -> None:
    """A receive() cancelled while it waits (task.cancel, wait_for, asyncio.timeout)
    takes nothing: the item that arrives after is the next receive()'s."""

    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            ch = gw.remote_exec("for item in channel: channel.send(item)")
            task = asyncio.ensure_future(ch.receive())
            await until(lambda: waiting([ch], [gw]) == 1, "the receive to wait")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ch.receive(), 0.01)
            if sys.version_info >= (3, 11):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.01):
                        await ch.receive()
            assert ch._waiters.futures == []
            await ch.send("one")
            assert await ch.receive(WAIT) == "one"

    run(main)


def test_cancellations_racing_arrivals_lose_nothing(spec: str) -> None:
    """Items stream in while receives are cancelled at every point: all arrive, in order."""
    count = 2000

    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            ch = gw.remote_exec(f"for i in range({count}): channel.send(i)")
            received: List[int] = []
            timeouts = 0
            while len(received) < count:
                try:
                    received.append(await asyncio.wait_for(ch.receive(), 0.0001 * (timeouts % 3)))
                except asyncio.TimeoutError:
                    timeouts += 1
            assert received == list(range(count))
            with pytest.raises(EOFError):
                await ch.receive(WAIT)

    run(main)


def test_cancelled_makegateway_leaves_no_process(spec: str) -> None:
    async def main() -> None:
        group = Group()
        before = children()
        task = asyncio.ensure_future(group.makegateway(spec))
        if not spec.startswith("socket"):  # (a socket gateway starts no local process)
            await until(lambda: bool(children() - before) or task.done(), "a child process")
        else:
            await asyncio.sleep(0)  # the bootstrap has started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert children() - before == set()
        assert len(group) == 0
        report = await group.terminate(WAIT)
        assert report.unresponsive == []

    run(main)


# -- errors ----------------------------------------------------------------------------


def test_errors_are_the_sync_api_classes(spec: str) -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            ch = gw.remote_exec("raise ValueError('no such thing')")
            with pytest.raises(execnet.RemoteError, match="no such thing"):
                await ch.receive(WAIT)
            ch = gw.remote_exec("raise ValueError('closing badly')")
            with pytest.raises(execnet.RemoteError, match="closing badly"):
                await ch.waitclose(WAIT)
            ch = gw.remote_exec("channel.send(1)")
            assert await ch.receive(WAIT) == 1
            with pytest.raises(EOFError):
                await ch.receive(WAIT)
            with pytest.raises(EOFError):
                await ch.receive(WAIT)  # every later receive ends the same way
            ch.close()
            with pytest.raises(ValueError, match="closed"):
                await ch.send(1)
            with pytest.raises(execnet.DumpError):
                await gw.remote_exec("channel.receive()").send(object())  # (stays open)

    run(main)


def test_host_not_found(sshd: Any) -> None:
    async def main() -> None:
        async with Group() as group:
            with pytest.raises(execnet.aio.HostNotFound) as info:
                await group.makegateway(f"ssh=no-such-host.invalid//ssh_config={sshd.ssh_config}")
            assert info.type is execnet.HostNotFound
            assert len(group) == 0

    run(main)


def test_remote_death_wakes_every_awaiting_coroutine(spec: str) -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            channels = [gw.remote_exec("channel.receive()") for _ in range(3)]
            waiters = [asyncio.ensure_future(ch.receive()) for ch in channels for _ in range(5)]
            closers = [asyncio.ensure_future(ch.waitclose()) for ch in channels]
            await until(lambda: waiting(channels, [gw]) >= 18, "the waiters")
            gw.remote_exec("import os; os._exit(3)")
            done, pending = await asyncio.wait(waiters + closers, timeout=WAIT)
            assert not pending
            for task in done:
                assert isinstance(task.exception(), EOFError), task
            await gw.join(WAIT)
            assert not gw.hasreceiver()

    run(main)


# -- async functions on the remote ---------------------------------------------------


async def doubler(channel, factor):  # type: ignore[no-untyped-def] # (sent: no annotations)
    import asyncio
    import threading

    async for item in channel:
        await asyncio.sleep(0)
        await channel.send((item * factor, threading.current_thread() is threading.main_thread()))


async def failing(channel):  # type: ignore[no-untyped-def]
    await channel.send("before")
    raise KeyError("async failure")


@pytest.mark.parametrize("execmodel", ["thread", "main_thread_only"])
def test_async_remote_function(spec: str, execmodel: str) -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(f"{spec}//execmodel={execmodel}")
            ch = gw.remote_exec(doubler, factor=3)
            for item in range(5):
                await ch.send(item)
                result, in_main = await ch.receive(WAIT)
                assert result == item * 3
                if execmodel == "main_thread_only":
                    assert in_main
            ch.close()
            await ch.waitclose(WAIT)
            ch = gw.remote_exec(failing)
            assert await ch.receive(WAIT) == "before"
            with pytest.raises(execnet.RemoteError, match="async failure"):
                await ch.receive(WAIT)

    run(main)


@pytest.mark.parametrize("python", ["3.8", "pypy3"])
def test_async_remote_function_on_other_interpreters(python: str) -> None:
    """The remote half (execnet_channel.aio) travels: 3.8 and PyPy run it too."""
    executable = parts.pypy3() if python == "pypy3" else parts.interpreter(python)

    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(f"popen//python={executable}")
            ch = gw.remote_exec(doubler, factor=2)
            await ch.send(21)
            assert (await ch.receive(WAIT))[0] == 42

    run(main)


def test_remote_start_does_not_import_asyncio(spec: str) -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            ch = gw.remote_exec("import sys; channel.send('asyncio' in sys.modules)")
            assert await ch.receive(WAIT) is False

    run(main)


# -- no thread per waiter; mixing sync and async --------------------------------------


def test_thousand_waiters_use_no_thread(spec: str) -> None:
    """1,000 coroutines on 100 channels of 10 gateways: the threads of the gateways
    (one receiver each, as in the sync API) and no more."""

    async def main() -> None:
        async with Group() as group:
            gateways = await group.makegateways([spec] * 10)
            channels = [
                gw.remote_exec("for _ in range(11): channel.send(channel.receive())")
                for gw in gateways
                for _ in range(10)
            ]
            for ch in channels:  # every channel works: a round trip each
                await ch.send(-1)
            assert [await ch.receive(WAIT) for ch in channels] == [-1] * 100
            threads = threading.active_count()
            waiters = [asyncio.ensure_future(ch.receive()) for ch in channels for _ in range(10)]
            await until(lambda: waiting(channels, gateways) >= 1000, "the waiters")
            assert threading.active_count() == threads
            for ch in channels:
                for item in range(10):
                    await ch.send(item)
            results = await asyncio.wait_for(asyncio.gather(*waiters), WAIT)
            assert sorted(results) == sorted(list(range(10)) * 100)
            assert threading.active_count() == threads

    run(main)


def test_sync_and_async_on_one_gateway(spec: str) -> None:
    """A thread receives on one channel (sync), a coroutine on another, at once."""

    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            sync_channel = gw.gateway.remote_exec("for x in channel: channel.send(x + 1)")
            async_channel = gw.remote_exec("for x in channel: channel.send(x * 2)")
            got: List[int] = []

            def sync_user() -> None:
                for item in range(200):
                    sync_channel.send(item)
                    got.append(sync_channel.receive(WAIT))

            thread = threading.Thread(target=sync_user)
            thread.start()
            for item in range(200):
                await async_channel.send(item)
                assert await async_channel.receive(WAIT) == item * 2
            await until(lambda: not thread.is_alive(), "the sync user")
            assert got == [item + 1 for item in range(200)]
            sync_channel.close()
            async_channel.close()

    run(main)


def test_an_existing_channel_becomes_async_without_losing_items() -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway("popen")
            channel = gw.gateway.remote_exec("for i in range(50): channel.send(i)")
            channel.receive(WAIT)  # the rest arrives into the sync queue meanwhile
            ach = AsyncChannel(channel)
            assert [item async for item in ach] == list(range(1, 50))
            assert AsyncChannel(channel)._items is ach._items  # wrapping twice shares

    run(main)


# -- sending waits for room without blocking the loop --------------------------------


def test_send_waits_for_room_without_blocking_the_loop() -> None:
    """With the remote process stopped, the pipe fills: send() waits for room while the
    loop goes on; once the process continues, every item arrives."""

    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway("popen")
            ch = gw.remote_exec("channel.send(sum(map(len, iter(channel.receive, None))))")
            pid = gw.gateway.child_pid
            assert pid is not None
            item = b"x" * 16384
            count = 400  # 6.5 MB: more than any pipe buffer
            os.kill(pid, signal.SIGSTOP)
            try:

                async def sender() -> None:
                    for _ in range(count):
                        await ch.send(item)

                task = asyncio.ensure_future(sender())

                # the loop runs (this coroutine polls) while send() waits for room
                def room() -> Any:
                    return gw.gateway._aio_room

                await until(lambda: room() is not None and bool(room().waiters), "room")
                assert not task.done()
            finally:
                os.kill(pid, signal.SIGCONT)
            await asyncio.wait_for(task, WAIT)
            await ch.send(None)
            assert await ch.receive(WAIT) == count * len(item)

    run(main)


def test_big_items_and_many_senders(spec: str) -> None:
    async def main() -> None:
        async with Group() as group:
            gw = await group.makegateway(spec)
            ch = gw.remote_exec("for x in channel: channel.send(len(x))")
            big = b"y" * (3 * 1024 * 1024)
            await ch.send(big)  # written by a short-lived thread
            assert await ch.receive(WAIT) == len(big)
            sizes = [1, 70_000, 10, 200_000, 5]
            await asyncio.gather(*(ch.send(b"z" * size) for size in sizes))
            assert sorted([await ch.receive(WAIT) for _ in sizes]) == sorted(sizes)

    run(main)


def test_group_terminate_report_and_remote_exec_on_all() -> None:
    async def main() -> None:
        group = Group()
        await group.makegateways(["popen", "popen"])
        channels = group.remote_exec("import os; channel.send(os.getpid())")
        pids = [await ch.receive(WAIT) for ch in channels]
        assert len(set(pids)) == 2
        report = await group.terminate(WAIT)
        assert sorted(report.exited) == ["gw0", "gw1"]
        assert len(group) == 0

    run(main)
