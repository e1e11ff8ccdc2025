"""The channel hook: how the channel layer puts channels into values and gets them out."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from execnet_serial import ChannelHook, DumpError, LoadError, dumps, dumps_payload, loads_payload


class Channel:
    def __init__(self, id: int) -> None:
        self.id = id


class SubChannel(Channel):
    pass


class Hook:
    channel_type = Channel

    def __init__(self) -> None:
        self.made: Dict[int, Channel] = {}
        self.asked: List[int] = []

    def channel_id(self, channel: Any) -> int:
        self.asked.append(channel.id)
        return int(channel.id)

    def channel_from_id(self, channel_id: int) -> Any:
        return self.made.setdefault(channel_id, Channel(channel_id))


def test_hook_round_trip_and_bytes() -> None:
    hook: ChannelHook = Hook()
    data = dumps_payload({"c": Channel(5), "l": [Channel(-1), (Channel(2**31 - 1),)]}, hook)
    assert b"B\x00\x00\x00\x05" in data
    loaded = loads_payload(data, hook=hook)
    assert [loaded["c"].id, loaded["l"][0].id, loaded["l"][1][0].id] == [5, -1, 2**31 - 1]
    assert loaded["c"] is loads_payload(b"B\x00\x00\x00\x05Q", hook=hook)
    assert dumps_payload(Channel(7), hook) == b"B\x00\x00\x00\x07Q"


def test_hook_matches_the_exact_type_only() -> None:
    hook = Hook()
    with pytest.raises(DumpError, match="SubChannel"):
        dumps_payload([SubChannel(1)], hook)
    assert hook.asked == []


def test_without_a_hook_channels_are_refused_both_ways() -> None:
    with pytest.raises(DumpError, match="Channel"):
        dumps_payload(Channel(1))
    with pytest.raises(DumpError, match="Channel"):
        dumps(Channel(1))
    with pytest.raises(LoadError, match="CHANNEL at offset 0"):
        loads_payload(b"B\x00\x00\x00\x01Q")


def test_channel_id_beyond_int4_is_a_dump_error() -> None:
    with pytest.raises(DumpError, match="channel id"):
        dumps_payload(Channel(2**31), Hook())


def test_hook_with_deep_values_and_string_options() -> None:
    hook = Hook()
    value: Any = Channel(3)
    for _ in range(3000):
        value = [value]
    loaded = loads_payload(dumps_payload(value, hook), hook=hook)
    for _ in range(3000):
        loaded = loaded[0]
    assert loaded.id == 3
    data = dumps_payload(["é", Channel(4)], hook)
    assert loads_payload(data, hook=hook, py3str_as_py2str=True)[0] == "é".encode()
