"""The termination tests again, with every popen gateway forked from a fork server.

EXECNET_FORK=1 turns each plain popen spec of test_terminate into popen//fork (also in
the interpreters those tests start); after each test no fork server of this process
is left, and every pid the tests check is a forked child's.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest
from rerun import collect_again

from execnet_transport import _forkserver

globals().update(collect_again(__file__, "test_terminate"))  # the same tests, collected again


@pytest.fixture(autouse=True)
def forked(monkeypatch: pytest.MonkeyPatch, procs) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """EXECNET_FORK=1 for the test; afterwards no process of it is left: the fork
    servers are children of this process, the gateways' processes theirs."""
    monkeypatch.setenv("EXECNET_FORK", "1")
    before = procs.children()
    yield
    new = sorted(procs.children() - before)
    assert procs.wait_gone(new, timeout=30) == [], "a process outlived the test"
    assert _forkserver.running_servers() == {}


def test_gateways_here_are_forked() -> None:
    from execnet_group import Group

    group = Group(["popen", "popen"])
    parents = [gw.remote_exec("import os; channel.send(os.getppid())").receive(30) for gw in group]
    assert parents[0] == parents[1] != os.getpid()
    assert group.terminate(timeout=10)
