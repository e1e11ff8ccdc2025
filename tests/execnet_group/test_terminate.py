"""Group.terminate with real processes: after it returns, no child of the group is alive."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest

from execnet_group import Group, TerminateReport

# How long the hung remotes below hang at most: longer than any test may run (pytest's
# timeout is 120 s), so only terminate ends them in time; bounded, so that a test that
# fails leaves no process spinning on a shared machine.
HANG_SECONDS = 300

ENDLESS_LOOP = f"""
import time
channel.send("running")
deadline = time.monotonic() + {HANG_SECONDS}
while time.monotonic() < deadline:
    pass
"""

BLOCKING_READ = """
import os
r, w = os.pipe()
channel.send("running")
os.read(r, 1)
"""

# The remote that cannot answer at all: its process is stopped (only SIGKILL works).
STOPPED = """
import os, signal
channel.send("running")
os.kill(os.getpid(), signal.SIGSTOP)
"""

IGNORES_SIGINT_AND_SIGTERM = f"""
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
channel.send("running")
deadline = time.monotonic() + {HANG_SECONDS}
while time.monotonic() < deadline:
    time.sleep(0.01)
"""


def _start_hung(group: Group, source: str, count: int = 1) -> list[int]:
    """Make `count` gateways running `source`; return the remote pids."""
    gateways = group.makegateways(["popen"] * count)
    pids = []
    for gw in gateways:
        # one task, so it runs in the remote's main thread (signal handlers need that)
        channel = gw.remote_exec("import os; channel.send(os.getpid())\n" + source)
        pid = channel.receive(30)
        assert pid == gw.child_pid
        pids.append(pid)
        assert channel.receive(30) == "running"
        if source is STOPPED:
            _wait_stopped(pid)
    return pids


def test_clean_exit_is_reported_as_exited(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group(["popen", "popen"])
    pids = [gw.child_pid for gw in group]
    report = group.terminate(timeout=None)  # no kill, however slow the machine is
    assert isinstance(report, TerminateReport)
    assert report.exited == ["gw0", "gw1"]
    assert report.killed == []
    assert report.unresponsive == []
    assert bool(report)
    assert [item.pid for item in report.gateways] == pids
    assert [item.status for item in report.gateways] == [0, 0]
    assert "exited" in str(report)
    assert not [pid for pid in pids if procs.alive(pid)]
    assert len(group) == 0


HUNG = {
    "endless-loop": ENDLESS_LOOP,
    "blocking-read": BLOCKING_READ,
    "ignores-sigint": IGNORES_SIGINT_AND_SIGTERM,
    "stopped": STOPPED,
}


@pytest.mark.parametrize("source", list(HUNG.values()), ids=list(HUNG))
def test_hung_remote_ends(source: str, procs) -> None:  # type: ignore[no-untyped-def]
    """Busy remote code ends: by itself on the exit message, else by the kill.

    (How long terminate takes is not judged here: on a loaded machine any bound fails.
    That it returns at all, with the process gone, is; a hang is pytest's timeout.)"""
    group = Group()
    (pid,) = _start_hung(group, source)
    report = group.terminate(timeout=0.5)
    assert report.exited + report.killed == ["gw0"], report
    assert not procs.alive(pid)
    if source is STOPPED:
        assert report.killed == ["gw0"]
        assert report.gateways[0].status == -9


def test_remote_that_already_died(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    gw = group.makegateway()
    pid = gw.child_pid
    channel = gw.remote_exec("import os; os._exit(3)")
    with pytest.raises(EOFError):
        channel.receive(30)
    report = group.terminate(timeout=5)
    assert report.exited == ["gw0"]
    assert report.gateways[0].status == 3
    assert not procs.alive(pid)


def test_sixteen_gateways_at_once(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    pids = _start_hung(group, STOPPED, count=4)
    group.makegateways(["popen"] * 12)
    pids += [gw.child_pid for gw in list(group)[4:]]
    assert len(set(pids)) == 16
    report = group.terminate(timeout=1.0)
    # the stopped ones only a kill ends; an idle one exits, or on a loaded machine may
    # not manage that within the timeout and is killed: both are right
    assert {"gw0", "gw1", "gw2", "gw3"} <= set(report.killed)
    assert set(report.exited + report.killed) == {f"gw{n}" for n in range(16)}
    assert not [pid for pid in pids if procs.alive(pid)]


def test_an_exit_that_blocks_does_not_hold_the_others(procs) -> None:  # type: ignore[no-untyped-def]
    # The exits are made one after another until one blocks (a send stuck on a full
    # pipe): then the rest go on without it, and its gateway is killed.
    group = Group()
    gateways = group.makegateways(["popen"] * 4)
    pids = [gw.child_pid for gw in gateways]
    blocker = threading.Event()
    gateways[1].exit = lambda: blocker.wait()  # type: ignore[method-assign]
    try:
        # long enough for an idle child to exit on a loaded machine: only one whose exit
        # call never came (held up behind gw1's) would be killed instead
        report = group.terminate(timeout=5.0)
    finally:
        blocker.set()
    assert report.killed == ["gw1"]
    assert report.exited == ["gw0", "gw2", "gw3"]
    assert not [pid for pid in pids if procs.alive(pid)]


def test_terminate_twice(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    (pid,) = _start_hung(group, STOPPED)
    first = group.terminate(timeout=0.3)
    second = group.terminate(timeout=0.3)
    assert first.killed == ["gw0"]
    assert second.gateways == ()
    assert not procs.alive(pid)
    assert group.terminate() is not None  # and once more, with no timeout


def test_hung_remote_fifty_times(procs) -> None:  # type: ignore[no-untyped-def]
    """Alternately a remote in an endless loop and one that cannot answer at all."""
    left: list[int] = []
    for run in range(50):
        group = Group()
        source = ENDLESS_LOOP if run % 2 else STOPPED
        (pid,) = _start_hung(group, source)
        report = group.terminate(timeout=0.1)
        assert report.exited + report.killed == ["gw0"], report
        if source is STOPPED:
            assert report.killed == ["gw0"], report
        if procs.alive(pid):
            left.append(pid)
    _kill(left)
    assert left == []


def test_a_kill_that_hangs_does_not_hold_terminate(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    (pid,) = _start_hung(group, STOPPED)
    gw = group[0]
    real_kill = gw.kill_child
    blocker = threading.Event()
    gw.kill_child = lambda: blocker.wait()  # type: ignore[method-assign]
    # the kill blocks until the blocker is set, which only happens below: that terminate
    # returns at all proves it does not wait for a kill that hangs
    report = group.terminate(timeout=0.5)
    try:
        assert not blocker.is_set()
        assert report.unresponsive == ["gw0"]
        assert not report
    finally:
        blocker.set()
        real_kill()
    # the gateway stays known, so a second terminate finishes the job
    again = group.terminate(timeout=2)
    assert again.killed + again.exited == ["gw0"]
    assert not procs.alive(pid)


def test_proxies_end_after_the_gateways_behind_them(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    proxy = group.makegateway("popen//id=proxy")
    sub = group.makegateway("popen//via=proxy//id=sub")
    sub_pid = sub.remote_exec("import os; channel.send(os.getpid())").receive(30)
    assert sub.remote_exec(ENDLESS_LOOP).receive(30) == "running"
    report = group.terminate(timeout=1.0)
    assert sorted(report.exited + report.killed) == ["proxy", "sub"]
    assert not procs.alive(proxy.child_pid)
    assert procs.wait_gone([sub_pid], timeout=60) == []


def test_terminate_without_timeout_waits_for_a_clean_exit(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    gw = group.makegateway()
    gw.remote_exec("import time; time.sleep(0.3)")
    report = group.terminate()
    assert report.exited == ["gw0"]
    assert not procs.alive(gw.child_pid)


def test_unused_groups_are_not_kept_alive() -> None:
    group = Group()
    group.makegateway()
    group.terminate(5)
    ref = weakref.ref(group)
    del group
    gc.collect()
    assert ref() is None


# The start of every interpreter-exit script: a group whose gateway cannot answer.
HUNG_CHILD = """
import atexit, execnet_group
group = execnet_group.Group()
gw = group.makegateway()
gw.remote_exec("import os, signal; channel.send(1); os.kill(os.getpid(), signal.SIGSTOP)").receive()
while "T (stopped)" not in open("/proc/%d/status" % gw.child_pid).read():
    pass
"""


def _run_exit_script(procs, body: str, python: str = sys.executable, **env: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Run HUNG_CHILD + body in `python`; check every pid it prints is gone; its lines."""
    result = subprocess.run(
        [python, "-c", HUNG_CHILD + textwrap.dedent(body)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    pids = [int(part) for part in lines[0].split()]
    left = [pid for pid in pids if procs.exists(pid)]
    _kill(left)
    assert left == [], "children outlived their parent"
    return lines


def test_interpreter_exit_terminates_every_group(procs) -> None:  # type: ignore[no-untyped-def]
    _run_exit_script(
        procs,
        """
        idle = execnet_group.makegateway()
        print(gw.child_pid, idle.child_pid, flush=True)
        """,
    )


def test_terminate_from_an_atexit_handler(procs) -> None:  # type: ignore[no-untyped-def]
    lines = _run_exit_script(
        procs,
        """
        def end():
            report = group.terminate(0.5)
            print("report", report.killed, flush=True)
        atexit.register(end)
        print(gw.child_pid, flush=True)
        """,
    )
    assert lines[1] == "report ['gw0']"


@pytest.mark.parametrize("version", ["3.8", "3.12", "3.13"])
def test_interpreter_exit_on_other_pythons(version: str, procs) -> None:  # type: ignore[no-untyped-def]
    """3.12+ refuse new threads at exit: terminate must then work without helpers."""
    from parts import ROOT, interpreter

    sources = os.pathsep.join(str(path) for path in sorted((ROOT / "packages").glob("*/src")))
    _run_exit_script(
        procs,
        """
        idle = execnet_group.makegateway()
        print(gw.child_pid, idle.child_pid, flush=True)
        """,
        python=interpreter(version),
        PYTHONPATH=sources,
    )


def _wait_stopped(pid: int, timeout: float = 30) -> None:
    """Wait until the kernel shows `pid` stopped (it sends "running" just before)."""
    deadline = time.monotonic() + timeout
    while "T (stopped)" not in Path(f"/proc/{pid}/status").read_text():
        assert time.monotonic() < deadline, f"pid {pid} did not stop"
        time.sleep(0.005)


def _kill(pids: list[int]) -> None:
    """Clean up after a failed check, so a broken terminate leaves no spinning process."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_stuck_socket_gateway_gets_its_connection_cut(procs) -> None:  # type: ignore[no-untyped-def]
    group = Group()
    group.makegateway("popen//id=server")
    gw = group.makegateway("socket//installvia=server//id=sock")
    remote_pid = gw.remote_exec("import os; channel.send(os.getpid())").receive(30)
    try:
        assert gw.remote_exec(STOPPED).receive(30) == "running"
        _wait_stopped(remote_pid)
        report = group.terminate(timeout=0.5)
        # the connection is closed, but the process behind it cannot be killed from
        # here: the report says so instead of calling it killed (it still runs); the
        # healthy popen gateway exits, or on a loaded machine is killed
        assert report.closed == ["sock"], report
        assert sorted(report.exited + report.killed) == ["server"], report
        assert "closed ['sock']" in str(report)
        assert not gw.hasreceiver()
    finally:
        _kill([remote_pid])


def test_ssh_gateways_end_with_their_remotes(sshd, procs) -> None:  # type: ignore[no-untyped-def]
    """Over ssh (a real sshd on 127.0.0.1): the local ssh client is our child; the remote
    interpreter, busy or idle, must not outlive the group either."""
    group = Group()
    spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}"
    busy, idle = group.makegateways([spec, spec])
    remote_pids = [
        gw.remote_exec("import os; channel.send(os.getpid())").receive(30) for gw in (busy, idle)
    ]
    local_pids = [busy.child_pid, idle.child_pid]
    assert busy.remote_exec(ENDLESS_LOOP).receive(30) == "running"
    report = group.terminate(timeout=1.0)
    assert sorted(report.exited + report.killed) == ["gw0", "gw1"], report
    assert not [pid for pid in local_pids if procs.alive(pid)]
    left = procs.wait_gone(remote_pids, timeout=60)  # reaped by sshd, not by us
    _kill(left)
    assert left == []
