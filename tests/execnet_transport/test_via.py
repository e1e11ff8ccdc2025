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
    with pytest.raises(EOFError, match="its via gateway 'hop' was lost"):
        waiter.receive(10)


# -- chains of any depth (issue 15) ------------------------------------------------

PID = "import os; channel.send((os.getpid(), os.getppid()))"


def _chain(makegw: MakeGateway, depth: int) -> list[Gateway]:
    """popen a; b popen//via=a; c popen//via=b; ... `depth` gateways in all."""
    names = "abcdefgh"[:depth]
    chain = [makegw(f"popen//id={names[0]}")]
    for name in names[1:]:
        chain.append(makegw(f"popen//id={name}//via={chain[-1].id}", via=chain[-1]))
    return chain


def test_a_chain_of_four(makegw: MakeGateway) -> None:
    chain = _chain(makegw, 4)
    pids = [gw.remote_exec(PID).receive(30) for gw in chain]
    assert pids[0][1] == os.getpid()
    for (pid, _), (_, parent) in zip(pids, pids[1:]):
        assert parent == pid  # each child was started by the hop's interpreter
    assert len({pid for pid, _ in pids}) == 4
    deepest = chain[-1]
    ch = deepest.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(b"y" * 2_000_000)  # big items cross every hop
    assert len(ch.receive(60)) == 4_000_000
    assert deepest.via_gateway is chain[2]
    assert chain[2].via_gateway is chain[1]


def test_exiting_a_chain_leaves_no_process(makegw: MakeGateway) -> None:
    from procs import wait_gone

    chain = _chain(makegw, 4)
    pids = [gw.remote_exec(PID).receive(30)[0] for gw in chain]
    for gw in reversed(chain):  # the deepest first, as a Group does
        gw.exit()
        gw.join(30)
    assert chain[0].wait_child(30) == 0
    assert wait_gone(pids, timeout=30) == []


def test_exiting_only_the_first_hop_ends_the_whole_chain(makegw: MakeGateway) -> None:
    from procs import wait_gone

    chain = _chain(makegw, 4)
    pids = [gw.remote_exec(PID).receive(30)[0] for gw in chain]
    waiter = chain[-1].remote_exec("channel.receive()")
    chain[0].exit()  # the hops below lose their proxies: their children are ended
    assert chain[0].wait_child(30) is not None
    with pytest.raises(EOFError):
        waiter.receive(30)
    assert wait_gone(pids, timeout=30) == []


def test_killing_a_middle_hop_wakes_every_waiter_below(makegw: MakeGateway) -> None:
    from procs import wait_gone

    chain = _chain(makegw, 4)
    pids = [gw.remote_exec(PID).receive(30)[0] for gw in chain]
    waiters = [gw.remote_exec("channel.receive()") for gw in chain]
    b = chain[1]
    b.kill_child()  # b's interpreter, killed by its proxy on a's host
    for gw, waiter in zip(chain[1:], waiters[1:]):
        with pytest.raises(EOFError) as info:
            waiter.receive(30)
        text = str(info.value)
        assert text.startswith(f"gateway {gw.id!r}")
        if gw is not b:  # every hop between names the one above it, down to b's end
            assert f"its via gateway {gw.via_gateway.id!r} was lost" in text
        assert "gateway 'b' (popen//id=b//via=a): connection lost" in text
        assert "killed by signal SIGKILL (on the host of via gateway 'a')" in text
    assert chain[0].remote_exec("channel.send(1)").receive(30) == 1  # a lives on
    assert wait_gone(pids[1:], timeout=30) == []


def test_a_group_chain_from_spec_strings() -> None:
    from procs import wait_gone

    from execnet_group import Group

    group = Group(["popen//id=a", "popen//id=b//via=a", "popen//id=c//via=b"])
    try:
        d = group.makegateway("popen//id=d//via=c")
        assert d.via_gateway is group["c"]
        pids = {gw.id: gw.remote_exec(PID).receive(30) for gw in group}
        assert [pids[x][1] for x in "bcd"] == [pids[x][0] for x in "abc"]
    finally:
        group.terminate(30)
    assert wait_gone([pid for pid, _ in pids.values()], timeout=30) == []
