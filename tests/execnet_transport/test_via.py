"""via=: a gateway whose child is started on another gateway's host, its IO proxied."""

from __future__ import annotations

import os
from typing import Callable

import parts
import pytest

from execnet_channel import NotProperlyTerminated
from execnet_transport import BootstrapError, Gateway

MakeGateway = Callable[..., Gateway]


def test_popen_via_popen(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw("popen//via=hop", via=hop)
    assert gw.via_gateway is hop
    assert gw.child_pid is None
    info = gw._rinfo()
    assert info.pid not in (os.getpid(), hop._rinfo().pid)
    ch = gw.remote_exec("import os; channel.send(os.getppid())")
    assert ch.receive(10) == hop._rinfo().pid
    ch = gw.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(b"x" * 3_000_000)
    assert len(ch.receive(30)) == 6_000_000


def test_via_with_other_python_and_options(makegw: MakeGateway, tmp_path: object) -> None:
    other = parts.other_interpreter()
    hop = makegw("popen")
    gw = makegw(f"popen//python={other}//env:EXECNET_V=v//execmodel=main_thread_only", via=hop)
    ch = gw.remote_exec(
        "import os, sys; channel.send((sys.executable, os.environ['EXECNET_V'],"
        " channel.gateway.execmodel.backend))"
    )
    assert ch.receive(10) == (other, "v", "main_thread_only")


def test_via_exit(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw("popen", via=hop)
    gw.exit()
    gw.join(10)
    assert not gw.hasreceiver()
    assert gw.wait_child(10) == 0
    assert hop.remote_exec("channel.send(1)").receive(10) == 1  # the hop lives on


def test_via_death_post_mortem(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw("popen//id=viadeath", via=hop)
    waiter = gw.remote_exec("channel.receive()")
    gw.remote_exec("import os, sys; sys.stderr.write('via last words\\n'); os._exit(4)")
    with pytest.raises(EOFError) as info:
        waiter.receive(10)
    assert "exit status 4" in str(info.value)
    assert "via last words" in str(info.value)
    died = waiter._getremoteerror()
    assert isinstance(died, NotProperlyTerminated)
    assert "exit status 4" in str(died)


def test_via_kill(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw("popen", via=hop)
    gw.remote_exec("import time; time.sleep(60)")
    gw.kill_child()
    assert gw.wait_child(10) == -9


def test_via_bad_python(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    with pytest.raises(BootstrapError, match="popen//python=/nonexistent/python"):
        makegw("popen//python=/nonexistent/python", via=hop)
    assert hop.remote_exec("channel.send(1)").receive(10) == 1


def test_via_hop_death_is_reported(makegw: MakeGateway) -> None:
    hop = makegw("popen//id=hop")
    gw = makegw("popen//id=behindhop", via=hop)
    waiter = gw.remote_exec("channel.receive()")
    hop.kill_child()
    with pytest.raises(EOFError, match="connection through the via gateway ended"):
        waiter.receive(10)
