"""MultiChannel over real popen gateways."""

from __future__ import annotations

import pytest

from execnet_channel import RemoteError
from execnet_group import Group, MultiChannel

ECHO_ONE = "channel.send(channel.receive())"


@pytest.fixture
def three(group: Group) -> Group:
    group.makegateways(["popen"] * 3)
    return group


def test_sequence_behaviour(three: Group) -> None:
    channels = [gw.remote_exec(ECHO_ONE) for gw in three]
    mch = MultiChannel(channels)
    assert len(mch) == 3
    assert list(mch) == channels
    assert mch[1] is channels[1]
    assert mch[-1] is channels[2]
    assert channels[0] in mch
    assert object() not in mch
    assert repr(mch).startswith("<MultiChannel [")
    mch.send_each(None)
    mch.waitclose()


def test_send_each_and_receive_each(three: Group) -> None:
    mch = three.remote_exec(ECHO_ONE)
    mch.send_each("hello")
    assert mch.receive_each() == ["hello"] * 3
    mch.waitclose()


def test_receive_each_with_channel(three: Group) -> None:
    mch = three.remote_exec("channel.send(channel.gateway.id)")
    pairs = mch.receive_each(withchannel=True)
    assert [channel for channel, _ in pairs] == list(mch)
    assert [item for _, item in pairs] == ["gw0", "gw1", "gw2"]
    assert [channel.gateway.id for channel, _ in pairs] == ["gw0", "gw1", "gw2"]


def test_receive_is_receive_each(three: Group) -> None:
    mch = three.remote_exec("channel.send(1)")
    assert mch.receive() == [1, 1, 1]


def test_make_receive_queue(three: Group) -> None:
    mch = three.remote_exec("channel.send(channel.gateway.id); channel.send(2)")
    queue = mch.make_receive_queue()
    assert mch.make_receive_queue() is queue
    got: dict[str, list[object]] = {}
    for _ in range(6):
        channel, item = queue.get(timeout=30)
        got.setdefault(channel.gateway.id, []).append(item)
    assert got == {f"gw{i}": [f"gw{i}", 2] for i in range(3)}


def test_make_receive_queue_with_endmarker(three: Group) -> None:
    mch = three.remote_exec("channel.send(channel.gateway.id)")
    end = object()
    queue = mch.make_receive_queue(endmarker=end)
    seen: dict[str, list[object]] = {}
    for _ in range(6):
        channel, item = queue.get(timeout=30)
        seen.setdefault(channel.gateway.id, []).append(item)
    assert seen == {f"gw{i}": [f"gw{i}", end] for i in range(3)}


def test_endmarker_when_a_gateway_dies(three: Group) -> None:
    mch = three.remote_exec("import os; channel.send('up'); channel.receive(); os._exit(1)")
    end = object()
    queue = mch.make_receive_queue(endmarker=end)
    mch.send_each("die")
    items = [queue.get(timeout=30) for _ in range(6)]
    assert sum(1 for _, item in items if item is end) == 3


def test_waitclose_reraises_the_first_remote_error(three: Group) -> None:
    gw0, gw1, gw2 = list(three)
    ok = gw0.remote_exec("pass")
    bad1 = gw1.remote_exec("raise ValueError('first failure')")
    bad2 = gw2.remote_exec("raise KeyError('second failure')")
    mch = MultiChannel([ok, bad1, bad2])
    with pytest.raises(RemoteError, match="first failure"):
        mch.waitclose()
    assert all(channel.isclosed() for channel in mch)


def test_waitclose_without_errors(three: Group) -> None:
    three.remote_exec("channel.send(1)").waitclose(30)


def test_empty_multichannel() -> None:
    mch = MultiChannel([])
    assert len(mch) == 0
    assert mch.receive_each() == []
    mch.send_each(1)
    mch.waitclose()
    assert mch.make_receive_queue().empty()


class _DuckChannel:
    """An object with only receive() and waitclose(), no timeout parameters."""

    def __init__(self, item: object) -> None:
        self.item = item
        self.closed = False

    def receive(self) -> object:
        return self.item

    def waitclose(self) -> None:
        self.closed = True


def test_duck_typed_channels_without_timeout_parameters() -> None:
    ducks = [_DuckChannel(1), _DuckChannel(2)]
    mch = MultiChannel(ducks)  # type: ignore[arg-type]
    assert mch.receive_each() == [1, 2]
    assert mch.receive_each(withchannel=True) == [(ducks[0], 1), (ducks[1], 2)]
    mch.waitclose()
    assert [duck.closed for duck in ducks] == [True, True]
