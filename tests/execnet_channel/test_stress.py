"""Volume and concurrency over an in-process pipe pair (thread model)."""

from __future__ import annotations

import gc
import threading
from typing import Any, Callable, List

import pytest

from execnet_channel import ChannelCallbackError
from execnet_serial import DumpError

TIMEOUT = 60.0


@pytest.mark.slow
def test_a_million_messages_arrive_complete_and_in_order(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channel = gw.remote_exec("for i in range(1000000): channel.send(i)")
    for expected in range(1000000):
        if channel.receive(TIMEOUT) != expected:
            raise AssertionError(f"message {expected} out of order")
    channel.waitclose(TIMEOUT)
    with pytest.raises(EOFError):
        channel.receive(TIMEOUT)


def test_a_hundred_channels_from_several_threads(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channels = [gw.remote_exec("for item in channel: channel.send(item * 2)") for _ in range(100)]
    errors: List[BaseException] = []

    def work(mine: List[Any]) -> None:
        try:
            for round_ in range(50):
                for channel in mine:
                    channel.send(channel.id * 1000 + round_)
                for channel in mine:
                    assert channel.receive(TIMEOUT) == 2 * (channel.id * 1000 + round_)
            for channel in mine:
                channel.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(channels[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors, errors
    for channel in channels:
        channel.waitclose(TIMEOUT)
    gc.collect()
    assert gw.remote_status().numexecuting == 0


def test_sends_from_many_threads_never_interleave(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    sink = gw.remote_exec(
        """
        total = 0
        for item in channel:
            tag, blob = item
            assert blob == bytes([tag % 256]) * len(blob), "mixed frame"
            total += 1
        """
    )
    sizes = [1, 100, 70000, 300000, 5]
    errors: List[BaseException] = []

    def send(tag: int) -> None:
        try:
            for i in range(200):
                sink.send((tag, bytes([tag % 256]) * sizes[i % len(sizes)]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(tag,)) for tag in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors
    sink.close()
    sink.waitclose(TIMEOUT)  # raises RemoteError if the remote saw a mixed frame


def test_close_wakes_a_receiving_thread(make_pair: Callable[..., Any]) -> None:
    # The remote code ends quietly when the close reaches it, so whichever comes first
    # (our close or the remote's own close) the waiting thread ends with EOFError.
    gw = make_pair().gw
    channel = gw.remote_exec(
        """
        try:
            channel.receive()
        except EOFError:
            pass
        """
    )
    result: List[Any] = []
    thread = threading.Thread(target=lambda: result.append(_receive_error(channel)))
    thread.start()
    channel.close()
    thread.join(TIMEOUT)
    assert result == [EOFError]


def test_close_wakes_a_receiving_thread_when_the_remote_fails_on_it(
    make_pair: Callable[..., Any],
) -> None:
    # The remote's receive() fails with EOFError once our close arrives; its error may
    # reach us before or after the receiving thread sees our own close (execnet 2.1.2
    # has the same two outcomes): either way the thread wakes, never a timeout.
    gw = make_pair().gw
    channel = gw.remote_exec("channel.receive()")
    result: List[Any] = []
    thread = threading.Thread(target=lambda: result.append(_receive_error(channel)))
    thread.start()
    channel.close()
    thread.join(TIMEOUT)
    assert result in ([EOFError], [channel.RemoteError])
    with pytest.raises(channel.RemoteError, match="EOFError"):
        channel.waitclose(TIMEOUT)


def _receive_error(channel: Any) -> Any:
    try:
        channel.receive(TIMEOUT)
    except Exception as exc:
        return type(exc)
    return None


def test_dropped_channels_are_forgotten(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    for _ in range(50):
        gw.remote_exec("channel.send(1)")
    gc.collect()
    assert gw.remote_exec("channel.send('sync')").receive(TIMEOUT) == "sync"
    gc.collect()
    assert len(gw._refs) <= 2
    assert not gw._early
    assert not gw._callbacks


def test_a_channel_of_another_gateway_cannot_be_sent(make_pair: Callable[..., Any]) -> None:
    one, two = make_pair().gw, make_pair().gw
    channel = one.remote_exec("channel.receive()")
    with pytest.raises(DumpError, match="another gateway"):
        channel.send(two.newchannel())
    channel.send(None)


def test_receive_after_setcallback_and_double_setcallback(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channel = gw.remote_exec("channel.receive()")
    channel.setcallback(lambda item: None)
    # an OSError (IOError) as in execnet 2.1.2, and a ValueError (a misuse)
    for error in (OSError, ValueError, ChannelCallbackError):
        with pytest.raises(error, match="callback"):
            channel.receive()
        with pytest.raises(error, match="already has a callback"):
            channel.setcallback(lambda item: None)
    with pytest.raises(OSError, match="callback"):
        channel.makefile("r").read(1)
    channel.send(None)
    channel.waitclose(TIMEOUT)


def test_makefile_mode_is_checked(make_pair: Callable[..., Any]) -> None:
    channel = make_pair().gw.newchannel()
    with pytest.raises(ValueError, match="'x'"):
        channel.makefile("x")  # type: ignore[call-overload]


def test_exit_and_join_from_a_callback(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    done = threading.Event()

    def callback(item: Any) -> None:
        gw.exit()
        gw.join(TIMEOUT)  # in the receiver itself: returns at once
        done.set()

    gw.remote_exec("channel.send(1)").setcallback(callback)
    assert done.wait(TIMEOUT)
    gw.join(TIMEOUT)
    assert not gw.hasreceiver()


def test_unsent_remote_channels_leave_nothing_behind(make_pair: Callable[..., Any]) -> None:
    gw = make_pair().gw
    channel = gw.remote_exec(
        """
        import gc
        for _ in range(20):
            unsent = channel.gateway.newchannel()
            del unsent
            gc.collect()
        channel.send("done")
        """
    )
    assert channel.receive(TIMEOUT) == "done"
    channel.waitclose(TIMEOUT)
    assert not gw._early
