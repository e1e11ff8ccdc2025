"""The travelling code on every interpreter it must run on: CPython 3.8-3.13 and PyPy3."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import parts
import pytest

HERE = Path(__file__).resolve().parent
SRC_DIRS = [
    str(HERE.parent.parent / "packages" / name / "src")
    for name in ("execnet-serial", "execnet-channel")
]


def triple(channel):  # type: ignore[no-untyped-def]
    import sys

    channel.send((channel.receive() * 3, tuple(sys.version_info[:2])))


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_both_ends_inside_the_target(target: str, tmp_path: Path) -> None:
    python = parts.target_interpreter(target)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(SRC_DIRS))
    env.update(EXECNET_DEBUG="1", TMPDIR=str(tmp_path))  # the trace file is made there too
    result = subprocess.run(  # noqa: PLW1510 - the output is asserted
        [python, str(HERE / "travelling_exchange.py")],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )
    assert result.stdout.strip() == "ok", result.stderr
    [trace] = tmp_path.glob("execnet-debug-*")
    assert trace.stat().st_mode & 0o777 == 0o600
    assert "CHANNEL_DATA" in trace.read_text()


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_this_interpreter_talks_to_the_target(target: str, make_child: Callable[..., Any]) -> None:
    python = parts.target_interpreter(target)
    gw = make_child(python=python).gw
    info = gw._remote_info()
    channel = gw.remote_exec(triple)
    channel.send("x")
    text, version = channel.receive(30)
    assert text == "xxx"
    assert version == tuple(info["version_info"][:2])
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    for value in [2**80, "ü", b"\xff", {"a": [1, 2.5]}, (None, True), {1, 2}, b"z" * (3 << 20)]:
        echo.send(value)
        assert echo.receive(30) == value
    echo.close()
    with pytest.raises(gw.remote_exec("pass").RemoteError, match="ZeroDivisionError"):
        gw.remote_exec("1 / 0").waitclose(30)
