"""A two-endpoint exchange run INSIDE another interpreter (not a test module).

test_travelling.py runs ``<interpreter> travelling_exchange.py`` with PYTHONPATH naming
the execnet-serial and execnet-channel src directories; it prints "ok" at the end.
Both ends live in this process, connected by os.pipe pairs; the serving end runs in a
thread.
"""

import os
import sys
import threading

from execnet_channel import BaseGateway, FdIO, FrameTooLarge, RemoteError, serve


def double(channel, factor=2):
    channel.send(channel.receive() * factor)


def fail(channel):
    raise ValueError("travelling failure")


def pair(max_frame=None):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    served = threading.Event()

    def run():
        try:
            serve(FdIO(r2, w1), "remote", exit_process=False, max_frame=max_frame)
        finally:
            served.set()

    threading.Thread(target=run, daemon=True).start()
    if max_frame is None:
        return BaseGateway(FdIO(r1, w2), "gw", opener=True), served
    return BaseGateway(FdIO(r1, w2), "gw", opener=True, max_frame=max_frame), served


def big_frames(gw):
    """Frames bigger than the receive buffer: read into an anonymous mapping, kept for
    the next big frame, dropped past 64 MiB."""
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    for size in (300000, 3 << 20, 65 << 20, 2 << 20):
        item = b"x" * size
        echo.send(item)
        assert echo.receive(30) == item
    echo.close()


def frame_limit(gw):
    """The limit: refused in the sender; a frame over it ends the gateway."""
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    error = None
    try:
        echo.send(b"y" * (gw.max_frame + 1))
    except FrameTooLarge as exc:
        error = str(exc)
    assert error is not None, "no FrameTooLarge"
    assert "nothing was sent" in error, error
    waiting = gw.newchannel()
    lie = f"bytes([5, 0, 0, 0, {waiting.id}]) + bytes([255] * 4)"
    gw.remote_exec(f"g = channel.gateway\nwith g._writelock: g._io.write({lie})")
    error = None
    try:
        waiting.receive(30)
    except EOFError as exc:
        error = str(exc)
    assert error is not None, "no EOFError"
    assert f"max_frame={gw.max_frame} bytes" in error, error


def main():
    gw, served = pair()

    channel = gw.remote_exec("channel.send(channel.receive() + 1)")
    channel.send(41)
    assert channel.receive(30) == 42

    channel = gw.remote_exec(double, factor=3)
    channel.send("ab")
    assert channel.receive(30) == "ababab"

    values = [None, True, 2**100, -1.5, 1j, "ü", b"\x00", [1, (2,)], {"k": {3}}, frozenset()]
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    for value in values:
        echo.send(value)
        assert echo.receive(30) == value
    mine = gw.newchannel()
    echo.send(mine)
    assert echo.receive(30) is mine
    echo.close()

    got = []
    ended = threading.Event()

    def callback(item):
        got.append(item)
        if item == "END":
            ended.set()

    channel = gw.remote_exec("for i in range(3): channel.send(i)")
    channel.setcallback(callback, endmarker="END")
    assert ended.wait(30)
    assert got == [0, 1, 2, "END"], got

    channel = gw.remote_exec(fail)
    try:
        channel.receive(30)
    except RemoteError as exc:
        text = str(exc)
    else:
        raise AssertionError("no RemoteError")
    assert "travelling failure" in text
    assert "travelling_exchange.py" in text

    big_frames(gw)

    status = gw.remote_status()
    assert status.execmodel == "thread", status
    info = gw._remote_info()
    assert tuple(info["version_info"][:2]) == tuple(sys.version_info[:2]), info

    gw.exit()
    assert served.wait(30)
    gw.join(30)
    assert not gw.hasreceiver()

    gw, served = pair(max_frame=1 << 20)
    frame_limit(gw)
    gw.exit()
    assert served.wait(30)
    print("ok")


if __name__ == "__main__":
    main()
