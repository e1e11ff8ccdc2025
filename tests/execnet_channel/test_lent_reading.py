"""The reading role lent to receive(): a waiting thread reads the stream itself.

See execnet_channel/_receiving.py. These tests pin what must not change when a thread
in receive() reads instead of the receiver: callbacks and control frames still run in
the receiver, a dead peer and a corrupt stream still wake every waiter, timeouts hold,
and nothing is lost or reordered.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List

import pytest

from execnet_channel import TimeoutError

TIMEOUT = 30.0

ECHO = """
for item in channel:
    channel.send(item)
"""


def lend(gw: Any, channel: Any, rounds: int = 50) -> None:
    """Round trips in which this thread reads for itself (the receiver lends the role)."""
    uses = gw._lend_uses
    for i in range(rounds):
        channel.send(i)
        assert channel.receive(TIMEOUT) == i
    # (not `gw._lent`: on a loaded machine a stall of 10 ms lets the receiver take the
    # role back for a moment, and that must be allowed)
    assert gw._lend_uses > uses, "no round trip was read by the receiving thread"


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_round_trips_are_read_by_the_receiving_thread(
    make_pair: Callable[..., Any], kind: str
) -> None:
    gw = make_pair(kind=kind).gw
    channel = gw.remote_exec(ECHO)
    lend(gw, channel)
    uses = gw._lend_uses
    values: List[Any] = [1, "two", (3.0, None), b"x" * 300_000, {"k": [1] * 1000}]
    for value in values * 20:
        channel.send(value)
        assert channel.receive(TIMEOUT) == value
    assert gw._lend_uses > uses + 50
    channel.close()
    channel.waitclose(TIMEOUT)


def test_a_callback_still_runs_in_the_receiver(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    called: List[Any] = []
    done = threading.Event()

    def callback(item: Any) -> None:
        called.append((item, threading.get_ident()))
        gw.join()  # from the receiver: returns at once
        done.set()

    side = gw.newchannel()
    side.setcallback(callback)
    channel = gw.remote_exec(
        """
        side = channel.receive()
        for item in channel:
            if item == "poke":
                side.send("poked")
            channel.send(item)
        """
    )
    channel.send(side)
    lend(gw, channel)
    channel.send("poke")
    assert channel.receive(TIMEOUT) == "poke"
    assert done.wait(TIMEOUT)
    assert called == [("poked", gw._receiver_ident)]
    lend(gw, channel)  # and the role is lent again afterwards
    channel.close()
    channel.waitclose(TIMEOUT)


def test_a_timeout_while_reading_for_itself(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channel = gw.remote_exec(ECHO)
    lend(gw, channel)
    # nothing can arrive (the echo waits for us): the only outcome is the timeout, and
    # after it the role and the stream are intact (how long it took is not judged)
    with pytest.raises(TimeoutError, match=r"no item after 0\.2 seconds"):
        channel.receive(0.2)
    channel.send("late")
    assert channel.receive(TIMEOUT) == "late"
    channel.close()
    channel.waitclose(TIMEOUT)


def test_peer_death_during_a_read_wakes_every_waiter(make_child: Callable[..., Any]) -> None:
    gw = make_child().gw
    other = gw.remote_exec("channel.receive()")
    channel = gw.remote_exec(
        """
        import os
        for item in channel:
            if item == "die":
                os._exit(3)
            channel.send(item)
        """
    )
    lend(gw, channel)
    errors: List[BaseException] = []

    def wait_on_other() -> None:
        try:
            other.receive(TIMEOUT)
        except BaseException as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait_on_other)
    waiter.start()
    channel.send("die")
    with pytest.raises(EOFError):
        channel.receive(TIMEOUT)
    waiter.join(TIMEOUT)
    assert not waiter.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], EOFError)


def test_a_corrupt_stream_during_a_read_ends_the_gateway(
    make_pair: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    pair = make_pair()
    gw = pair.gw
    channel = gw.remote_exec(ECHO)
    lend(gw, channel)
    pair.remote_io.write(b"\xee" + bytes(8))  # no such frame kind
    with pytest.raises(EOFError):
        channel.receive(TIMEOUT)
    gw.join(TIMEOUT)
    assert not gw.hasreceiver()
    assert "corrupt stream" in capfd.readouterr().err


def test_status_and_exec_are_answered_while_the_remote_main_thread_reads(
    make_child: Callable[..., Any],
) -> None:
    gw = make_child().gw
    busy = gw.remote_exec(ECHO)  # the remote main thread reads for itself from now on
    lend(gw, busy)
    assert gw.remote_status().numexecuting == 1
    second = gw.remote_exec("channel.send(channel.gateway._lend_uses)")
    assert second.receive(TIMEOUT) > 0  # the remote main thread did read for itself
    # its task counts as executing until it returns; the close comes after that
    second.waitclose(TIMEOUT)
    assert gw.remote_status().numexecuting == 1
    busy.close()
    busy.waitclose(TIMEOUT)
    assert gw.remote_exec("channel.send(42)").receive(TIMEOUT) == 42


def test_two_threads_round_trip_at_once(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channels = [gw.remote_exec(ECHO) for _ in range(2)]
    failures: List[BaseException] = []

    def round_trips(channel: Any, tag: str) -> None:
        try:
            for i in range(500):
                channel.send((tag, i))
                assert channel.receive(TIMEOUT) == (tag, i)
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=round_trips, args=(channel, str(n)))
        for n, channel in enumerate(channels)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    for channel in channels:
        channel.close()
        channel.waitclose(TIMEOUT)


def test_the_receiver_takes_an_unused_role_back(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channel = gw.remote_exec(ECHO)
    lend(gw, channel)
    # nobody receives now: the receiver reads again after a period or two
    assert wait_until(lambda: not gw._lent)
    called = threading.Event()
    side = gw.newchannel()
    side.setcallback(lambda item: called.set())
    channel.send(side)  # the echo sends the channel back, through the receiver
    assert channel.receive(TIMEOUT) is side
    channel.close()
    channel.waitclose(TIMEOUT)
