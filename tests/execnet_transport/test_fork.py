"""popen//fork: gateways forked from a fork server (one per interpreter), EXECNET_FORK=1.

Every process is checked by pid through the kernel (/proc), never by timing.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import parts
import pytest
from procs import alive, children, wait_gone

from execnet_transport import Gateway, XSpec, _forkserver, make_gateway

MakeGateway = Callable[..., Gateway]

FACTS = (
    "import os, sys, threading\n"
    "channel.send({'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd(),"
    " 'env': dict(os.environ), 'umask': os.umask(0o22), 'exe': sys.executable})"
)


def facts(gw: Gateway) -> dict:  # type: ignore[type-arg]
    result: dict = gw.remote_exec(FACTS).receive(30)  # type: ignore[type-arg]
    return result


def server_pids() -> list[int]:
    return list(_forkserver.running_servers().values())


@pytest.fixture(autouse=True)
def no_server_left() -> Iterator[None]:
    """Each test starts without a server of this process and leaves none running."""
    before = server_pids()
    assert not before, f"fork servers left by an earlier test: {before}"
    yield
    # makegw's teardown ended every gateway: the servers end with their last one.
    assert wait_gone(server_pids() + _gone_servers) == []
    _gone_servers.clear()


_gone_servers: list[int] = []  # servers a test saw, checked after its gateways ended


def test_the_gateway_is_forked_from_a_server(makegw: MakeGateway) -> None:
    first = makegw("popen//fork")
    second = makegw("popen//fork")
    one, two = facts(first), facts(second)
    (server,) = server_pids()
    _gone_servers.append(server)
    assert one["ppid"] == two["ppid"] == server != os.getpid()
    assert first.child_pid == one["pid"]
    assert second.child_pid == two["pid"]
    assert one["exe"] == sys.executable
    # the server holds no thread and sits in "/" (no directory of ours kept busy)
    assert len(os.listdir(f"/proc/{server}/task")) == 1
    assert os.readlink(f"/proc/{server}/cwd") == "/"


def test_the_server_socket_has_no_name(makegw: MakeGateway) -> None:
    """Only the opener holds the server's control socket: nothing another user could
    connect to (no path, no abstract name), no other socket, no inherited pipe."""
    facts(makegw("popen//fork"))
    (server,) = server_pids()
    _gone_servers.append(server)
    inodes = []
    for fd in os.listdir(f"/proc/{server}/fd"):
        target = os.readlink(f"/proc/{server}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.append(target[len("socket:[") : -1])
        else:  # /dev/null on 0/1, the wake-up pipe, nothing else
            assert target == os.devnull or target.startswith("pipe:") or fd == "2", target
    assert inodes  # the control socket and the child's line
    table = Path("/proc/net/unix").read_text().splitlines()[1:]
    for inode in inodes:
        (row,) = [line.split() for line in table if line.split()[6] == inode]
        assert len(row) == 7, f"socket {inode} of the fork server has a name: {row[7]}"
    assert os.stat(f"/proc/{server}").st_uid == os.getuid()


def test_child_takes_cwd_env_and_umask_as_of_the_makegateway_call(
    makegw: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("EXECNET_FORK_TEST", "first")
    monkeypatch.setenv("EXECNET_FORK_GONE", "here")
    old_mask = os.umask(0o027)
    try:
        first = makegw("popen//fork")
        monkeypatch.chdir(tmp_path / "b")
        monkeypatch.setenv("EXECNET_FORK_TEST", "second")
        monkeypatch.delenv("EXECNET_FORK_GONE")
        os.umask(0o002)
        second = makegw("popen//fork//env:EXECNET_FORK_SPEC=spec")
    finally:
        os.umask(old_mask)
    one, two = facts(first), facts(second)
    assert one["ppid"] == two["ppid"] != os.getpid()  # both forked by one server
    _gone_servers.append(one["ppid"])
    assert one["cwd"] == str(tmp_path / "a")
    assert two["cwd"] == str(tmp_path / "b")
    assert one["env"]["EXECNET_FORK_TEST"] == "first"
    assert one["env"]["EXECNET_FORK_GONE"] == "here"
    assert two["env"]["EXECNET_FORK_TEST"] == "second"
    assert "EXECNET_FORK_GONE" not in two["env"]
    assert two["env"]["EXECNET_FORK_SPEC"] == "spec"
    assert "EXECNET_FORK_SPEC" not in one["env"]
    assert (one["umask"], two["umask"]) == (0o027, 0o002)
    # what a plain popen child sees, variable for variable
    plain = facts(makegw("popen//env:EXECNET_FORK_SPEC=spec"))
    assert plain["env"] == two["env"]
    assert plain["cwd"] == two["cwd"]


def test_spec_chdir_and_nice(makegw: MakeGateway, tmp_path: Path) -> None:
    gw = makegw(f"popen//fork//chdir={tmp_path / 'made'}//nice=3")
    assert facts(gw)["cwd"] == str(tmp_path / "made")
    niceness = gw.remote_exec("import os; channel.send(os.nice(0))").receive(30)
    assert niceness == os.nice(0) + 3
    _gone_servers.extend(server_pids())


def test_python_command_that_sets_the_environment(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the interpreter command line itself changes (env -u NAME NAME=value python)
    reaches every forked child, over the caller's environment as of each call."""
    monkeypatch.setenv("EXECNET_FORK_CMD", "caller")
    monkeypatch.setenv("EXECNET_FORK_UNSET", "caller")
    spec = f"popen//fork//python=env -u EXECNET_FORK_UNSET EXECNET_FORK_CMD=yes {sys.executable}"
    found = facts(makegw(spec))
    assert found["env"]["EXECNET_FORK_CMD"] == "yes"
    assert "EXECNET_FORK_UNSET" not in found["env"]
    assert found["ppid"] != os.getpid()
    _gone_servers.append(found["ppid"])
    # The caller changes them after the server started: the command line still wins,
    # as for `env -u ... NAME=value python` started now; its other changes arrive.
    monkeypatch.setenv("EXECNET_FORK_CMD", "later")
    monkeypatch.setenv("EXECNET_FORK_UNSET", "later")
    monkeypatch.setenv("EXECNET_FORK_OTHER", "later")
    again = facts(makegw(spec))
    assert again["ppid"] == found["ppid"]
    assert again["env"]["EXECNET_FORK_CMD"] == "yes"
    assert "EXECNET_FORK_UNSET" not in again["env"]
    assert again["env"]["EXECNET_FORK_OTHER"] == "later"


@pytest.mark.parametrize("model", ["thread", "main_thread_only", "gevent", "eventlet"])
def test_remote_execmodels(model: str, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//fork//execmodel={model}")
    assert gw.remote_status().execmodel == model
    source = "import os; channel.send((channel.gateway.execmodel.backend, os.getppid()))"
    backend, parent = gw.remote_exec(source).receive(30)
    assert backend == model
    assert parent != os.getpid()
    _gone_servers.append(parent)


@pytest.mark.parametrize("target", ["other", "pypy3"])
def test_other_interpreters_get_their_own_server(target: str, makegw: MakeGateway) -> None:
    python = parts.other_interpreter() if target == "other" else parts.pypy3()
    mine = facts(makegw("popen//fork"))
    theirs = facts(makegw(f"popen//fork//python={python}"))
    again = facts(makegw(f"popen//fork//python={python}"))
    assert len(server_pids()) == 2
    assert theirs["ppid"] == again["ppid"] != mine["ppid"]
    assert os.path.realpath(theirs["exe"]) == os.path.realpath(shutil.which(python) or python)
    _gone_servers.extend([mine["ppid"], theirs["ppid"]])


def test_environment_switch(makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECNET_FORK", "1")
    forked = facts(makegw("popen"))
    assert forked["ppid"] != os.getpid()
    _gone_servers.append(forked["ppid"])
    monkeypatch.setenv("EXECNET_FORK", "0")
    assert facts(makegw("popen"))["ppid"] == os.getpid()
    monkeypatch.delenv("EXECNET_FORK")
    assert facts(makegw("popen"))["ppid"] == os.getpid()


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("popen//fork=1", "takes no value"),
        ("ssh=somehost//fork", "fork= .* only works with popen"),
        ("socket=127.0.0.1:1//fork", "fork= .* only works with popen"),
        ("popen//fork//sudo=nobody", r"only works with a local popen gateway \(not with sudo=\)"),
    ],
)
def test_bad_fork_specs(spec: str, text: str) -> None:
    xspec = XSpec(spec)
    xspec.id = "bad"
    with pytest.raises(ValueError, match=text):
        make_gateway(xspec)
    assert server_pids() == []


def test_fork_with_via_is_refused(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    xspec = XSpec("popen//fork//via=hop")
    xspec.id = "bad"
    with pytest.raises(ValueError, match=r"a local popen gateway \(not with via=\)"):
        make_gateway(xspec, via=hop)
    assert server_pids() == []


def test_the_server_goes_away_with_the_last_gateway(makegw: MakeGateway) -> None:
    first = makegw("popen//fork")
    second = makegw("popen//fork")
    (server,) = server_pids()
    children = [first.child_pid, second.child_pid]
    first.exit()
    first.join(10)
    assert first.wait_child(20) == 0
    assert alive(server)  # one gateway left
    assert facts(second)["ppid"] == server
    second.exit()
    second.join(10)
    assert second.wait_child(20) == 0
    assert wait_gone([server, *children]) == []  # type: ignore[list-item]
    assert server_pids() == []
    # the next fork gateway starts a new server
    third = facts(makegw("popen//fork"))
    assert third["ppid"] not in (server, os.getpid())
    _gone_servers.append(third["ppid"])


def _spares(server: int, *gateways: Gateway) -> set[int]:
    """The server's children that are no gateway's: its spare, forked ahead (the server
    forks it once the last one took its request: waited for here, up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        found = children(server) - {gw.child_pid for gw in gateways}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_a_spare_waits_and_becomes_the_next_child(makegw: MakeGateway) -> None:
    first = makegw("popen//fork")
    (server,) = server_pids()
    (spare,) = _spares(server, first)  # forked ahead, waiting for the next request
    second = makegw("popen//fork")
    assert second.child_pid == spare
    assert facts(second)["pid"] == spare
    (next_spare,) = _spares(server, first, second)
    assert next_spare not in (spare, first.child_pid)
    for gw in (first, second):
        gw.exit()
        gw.join(10)
        assert gw.wait_child(20) == 0
    # the last gateway ended: the spare reads the end of the control socket and exits
    assert wait_gone([server, next_spare, spare]) == []


def test_a_killed_spare_is_replaced(makegw: MakeGateway) -> None:
    first = makegw("popen//fork")
    (server,) = server_pids()
    (spare,) = _spares(server, first)
    os.kill(spare, signal.SIGKILL)
    assert wait_gone([spare]) == []
    deadline = time.monotonic() + 10
    while _spares(server, first) in ({spare}, set()) and time.monotonic() < deadline:
        time.sleep(0.01)
    (replacement,) = _spares(server, first)
    assert replacement != spare
    second = makegw("popen//fork")
    assert facts(second)["pid"] == replacement
    assert facts(second)["ppid"] == server


def test_the_spare_of_a_dead_server_exits(makegw: MakeGateway) -> None:
    gw = makegw("popen//fork")
    (server,) = server_pids()
    (spare,) = _spares(server, gw)
    os.kill(server, signal.SIGKILL)
    assert wait_gone([server, spare]) == []  # its link to the server ended
    assert gw.remote_exec("channel.send(6 * 7)").receive(30) == 42
    pid = gw.child_pid
    gw.exit()
    gw.join(10)
    assert gw.wait_child(20) is not None
    assert pid is not None
    assert wait_gone([pid]) == []


def test_death_of_a_forked_child_is_reported(makegw: MakeGateway) -> None:
    gw = makegw("popen//fork//id=dying")
    waiter = gw.remote_exec("channel.receive()")
    gw.remote_exec("import os, sys; sys.stderr.write('last words\\n'); os._exit(3)")
    with pytest.raises(EOFError) as info:
        waiter.receive(30)
    assert "exit status 3" in str(info.value)
    assert "last words" in str(info.value)
    assert gw.wait_child(10) == 3
    _gone_servers.extend(server_pids())


def test_kill_process_and_wait(makegw: MakeGateway) -> None:
    gw = makegw("popen//fork")
    gw.remote_exec("import time; time.sleep(60)")
    assert gw.wait_child(0.01) is None
    pid = gw.child_pid
    gw.kill_child()
    assert gw.wait_child(20) == -signal.SIGKILL
    gw.kill_child()  # again: harmless
    assert pid is not None
    assert not alive(pid)
    _gone_servers.extend(server_pids())


def test_a_crashed_server_is_reported_and_the_next_gateway_starts_plain(
    makegw: MakeGateway,
) -> None:
    survivor = makegw("popen//fork")
    (server,) = server_pids()
    os.kill(server, signal.SIGKILL)
    assert wait_gone([server]) == []
    # the gateway forked before goes on working, and still ends for sure
    assert survivor.remote_exec("channel.send(6 * 7)").receive(30) == 42
    with pytest.warns(RuntimeWarning, match=rf"fork server \(pid {server}\) is gone") as caught:
        plain = makegw("popen//fork")
    # it names the caller's caller of make_gateway (a Group's user), not execnet's code
    assert [w.filename for w in caught] == [__file__]
    assert facts(plain)["ppid"] == os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        renewed = facts(makegw("popen//fork"))
    assert renewed["ppid"] not in (server, os.getpid())
    _gone_servers.append(renewed["ppid"])
    pid = survivor.child_pid
    survivor.exit()
    survivor.join(10)
    assert survivor.wait_child(20) is not None
    assert pid is not None
    assert wait_gone([pid]) == []


def test_a_server_that_cannot_start_falls_back_quietly_to_the_plain_error(
    makegw: MakeGateway,
) -> None:
    from execnet_transport import BootstrapError

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BootstrapError, match="exit status 3"):
            makegw("popen//fork//python=sh -c 'exit 3'")
    assert server_pids() == []


def test_a_forked_child_ends_like_an_interpreter(makegw: MakeGateway, tmp_path: Path) -> None:
    """atexit handlers run and non-daemon threads are waited for at the child's end."""
    gw = makegw("popen//fork")
    done = tmp_path / "atexit-ran"
    thread_done = tmp_path / "thread-ran"
    gw.remote_exec(
        "import atexit, threading\n"
        f"atexit.register(lambda: open({str(done)!r}, 'w').write('yes'))\n"
        "def late():\n"
        "    threading.main_thread().join()\n"
        f"    open({str(thread_done)!r}, 'w').write('yes')\n"
        "threading.Thread(target=late).start()\n"
    ).waitclose(30)
    _gone_servers.extend(server_pids())
    gw.exit()
    gw.join(10)
    assert gw.wait_child(30) == 0
    assert done.read_text() == "yes"
    assert thread_done.read_text() == "yes"
