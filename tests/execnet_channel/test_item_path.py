"""docs/CONTRACTS.md's walk of one item from Channel.send to receive names functions
that exist: a rename that leaves the document behind fails here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import execnet_channel
import execnet_serial
from execnet_channel import _frames, _gateway, _receiving

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "CONTRACTS.md"
OWNERS = {
    "Channel": execnet_channel.Channel,
    "BaseGateway": execnet_channel.BaseGateway,
    "Receiving": _receiving.Receiving,
    "_ChannelHook": _gateway._ChannelHook,
    "FdIO": execnet_channel.FdIO,
    "IO": execnet_channel.IO,
    "BufferedIO": execnet_channel.BufferedIO,
    "ExecModel": execnet_channel.ExecModel,
    "_gateway": _gateway,
    "os": os,
    "_frames": _frames,
    "execnet_serial": execnet_serial,
}


def _section() -> str:
    text = CONTRACTS.read_text(encoding="utf-8")
    start = text.index("## One item's way")
    return text[start : text.index("\n## ", start + 1)]


def _named() -> list[str]:
    names = re.findall(r"`([A-Za-z_]+\.[A-Za-z_]+)[`(]", _section())
    return sorted({name for name in names if not name.endswith(".py")})  # not file names


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", _named())
def test_every_function_on_the_path_exists(name: str) -> None:
    owner, attribute = name.split(".")
    assert owner in OWNERS, f"CONTRACTS.md names {name}: add {owner} to OWNERS"
    assert hasattr(OWNERS[owner], attribute), f"CONTRACTS.md names {name}, which is gone"


@pytest.mark.timeout(30)
def test_the_path_names_the_steps() -> None:
    assert {"Channel.send", "BaseGateway._send_item", "Receiving._pump", "Channel.receive"} <= set(
        _named()
    )
