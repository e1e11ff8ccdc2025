"""serve() in a real child process: main thread, termination, stdio, tracing, models."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, List

import pytest
from gateway_contract import GatewayContract

TIMEOUT = 30.0


class TestChildProcess(GatewayContract):
    @pytest.fixture(params=["thread", "main_thread_only"])
    def gw(self, request: pytest.FixtureRequest, make_child: Callable[..., Any]) -> Any:
        return make_child(execmodel=request.param).gw


def test_first_task_in_main_thread_concurrent_ones_elsewhere(
    make_child: Callable[..., Any],
) -> None:
    gw = make_child().gw
    is_main = (
        "import threading; channel.send(threading.current_thread() is threading.main_thread())"
    )
    first = gw.remote_exec(is_main + "; channel.receive()")
    assert first.receive(TIMEOUT) is True
    second = gw.remote_exec(is_main)
    assert second.receive(TIMEOUT) is False
    first.send(None)
    first.waitclose(TIMEOUT)
    assert gw.remote_exec(is_main).receive(TIMEOUT) is True


def test_main_thread_only_runs_everything_in_main(make_child: Callable[..., Any]) -> None:
    child = make_child(execmodel="main_thread_only")
    gw, child_pid = child.gw, child.proc.pid
    is_main = (
        "import threading; channel.send(threading.current_thread() is threading.main_thread())"
    )
    for _ in range(3):
        channel = gw.remote_exec(is_main)
        assert channel.receive(TIMEOUT) is True
    busy = gw.remote_exec("channel.receive()")
    # the receiver answers these although the main thread is busy
    assert gw._remote_info()["pid"] == child_pid
    assert gw.remote_status().numexecuting == 1
    refused = gw.remote_exec("channel.send('ran')")
    with pytest.raises(refused.RemoteError, match=r"main_thread_only.*deadlock"):
        refused.receive(TIMEOUT)
    busy.send(None)
    busy.waitclose(TIMEOUT)
    assert gw.remote_exec("channel.send('ran')").receive(TIMEOUT) == "ran"


def test_main_thread_only_queues_a_task_arriving_as_the_previous_ends(
    make_child: Callable[..., Any],
) -> None:
    gw = make_child(execmodel="main_thread_only").gw
    for i in range(20):
        # the first task's close may not have been sent yet when the second arrives
        assert gw.remote_exec("channel.send(1)").receive(TIMEOUT) == 1
        assert gw.remote_exec(f"channel.send({i})").receive(TIMEOUT) == i


def test_main_thread_only_runs_a_task_queued_behind_a_busy_one(
    make_child: Callable[..., Any],
) -> None:
    # Decided from state, not from a time: a task that does not wait for the opener is
    # waited for however long it takes (a grace of one second refused this one).
    gw = make_child(execmodel="main_thread_only").gw
    first = gw.remote_exec("import time; channel.send('busy'); time.sleep(1.5)")
    assert first.receive(TIMEOUT) == "busy"
    second = gw.remote_exec("channel.send('second ran')")
    assert second.receive(TIMEOUT) == "second ran"
    first.waitclose(TIMEOUT)


def test_main_thread_only_refuses_a_queued_task_once_the_running_one_waits(
    make_child: Callable[..., Any],
) -> None:
    # The first task waits for the opener only once the second is queued behind it:
    # the second is refused then, and the first goes on.
    gw = make_child(execmodel="main_thread_only").gw
    first = gw.remote_exec(
        "import time\n"
        "channel.send('running')\n"
        "deadline = time.monotonic() + 60\n"
        "while not channel.gateway._waiting and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "channel.send(channel.receive() * 2)\n"
    )
    assert first.receive(TIMEOUT) == "running"
    second = gw.remote_exec("channel.send('ran')")
    with pytest.raises(second.RemoteError, match=r"main_thread_only.*waits for the other side"):
        second.receive(TIMEOUT)
    first.send(21)
    assert first.receive(TIMEOUT) == 42
    first.waitclose(TIMEOUT)
    assert gw.remote_exec("channel.send('then')").receive(TIMEOUT) == "then"


@pytest.mark.parametrize(
    "source",
    [
        "import time; channel.send('go'); time.sleep(1000)",
        "import threading; channel.send('go'); threading.Event().wait()",
        # (bounded at 300 s, longer than the test may run: a failure leaves nothing spinning)
        "import time; channel.send('go'); end = time.monotonic() + 300\n"
        "while time.monotonic() < end:\n    pass",
    ],
    ids=["sleep", "event-wait", "busy-loop"],
)
def test_terminate_interrupts_the_main_thread(make_child: Callable[..., Any], source: str) -> None:
    child = make_child()
    channel = child.gw.remote_exec(source)
    assert channel.receive(TIMEOUT) == "go"
    child.gw.exit()
    # interrupted, the process ends cleanly (0); the exit watchdog, which ends code
    # that ignores the interrupt, would give 1 (see the next test)
    assert child.proc.wait(TIMEOUT) == 0


def test_terminate_kills_user_code_that_ignores_interrupts(
    make_child: Callable[..., Any],
) -> None:
    child = make_child()
    channel = child.gw.remote_exec(
        """
        import signal, time
        # swallowed before "go": no KeyboardInterrupt can come between the statements
        # (a try/except around the sleep would still let one escape from the others)
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        channel.send("go")
        while True:
            time.sleep(100)
        """
    )
    assert channel.receive(TIMEOUT) == "go"
    child.gw.exit()
    assert child.proc.wait(TIMEOUT) == 1  # os._exit(1) of the exit watchdog


def test_terminate_with_a_hung_thread_task(make_child: Callable[..., Any]) -> None:
    child = make_child()
    first = child.gw.remote_exec("channel.receive()")
    hung = child.gw.remote_exec("import time; channel.send('go'); time.sleep(1000)")
    assert hung.receive(TIMEOUT) == "go"
    child.gw.exit()
    assert child.proc.wait(TIMEOUT) == 0  # a task thread does not hold the process
    with pytest.raises(EOFError):
        first.receive(TIMEOUT)


def test_child_exits_when_the_opener_goes_away(make_child: Callable[..., Any]) -> None:
    child = make_child()
    channel = child.gw.remote_exec("channel.send('go'); channel.receive()")
    assert channel.receive(TIMEOUT) == "go"
    child.io.close_write()  # no terminate message: just the end of the stream
    child.proc.wait(TIMEOUT)


def test_stdio_is_moved_out_of_the_way(make_child: Callable[..., Any], tmp_path: Path) -> None:
    child = make_child(stderr_path=tmp_path / "stderr")
    channel = child.gw.remote_exec(
        """
        import os, sys
        print("garbage that must not reach the stream")
        sys.stdout.flush()
        os.write(1, b"raw garbage on fd 1")
        sys.stderr.write("visible on stderr\\n")
        sys.stderr.flush()
        channel.send((sys.stdin.read(), os.read(0, 10)))
        """
    )
    assert channel.receive(TIMEOUT) == ("", b"")
    assert child.gw.remote_exec("channel.send('still in sync')").receive(TIMEOUT) == (
        "still in sync"
    )
    child.close()
    assert "visible on stderr" in (tmp_path / "stderr").read_text()


@pytest.mark.parametrize("value", ["1", "2", "0", ""])
def test_execnet_debug(make_child: Callable[..., Any], tmp_path: Path, value: str) -> None:
    env = {"EXECNET_DEBUG": value, "TMPDIR": str(tmp_path)}
    child = make_child(env=env, stderr_path=tmp_path / "stderr")
    pid = child.gw._remote_info()["pid"]
    assert child.gw.remote_exec("channel.send(1)").receive(TIMEOUT) == 1
    child.close()
    stderr = (tmp_path / "stderr").read_text()
    trace_file = tmp_path / f"execnet-debug-{pid}"
    if value == "1":
        assert f"[{pid}] gateway child:" in trace_file.read_text()
        assert "gateway child" not in stderr
    elif value == "2":
        assert f"[{pid}] gateway child:" in stderr
        assert not trace_file.exists()
    else:
        assert not trace_file.exists()
        assert "gateway child" not in stderr


@pytest.mark.parametrize("model", ["gevent", "eventlet"])
def test_greenlet_serve(make_child: Callable[..., Any], model: str) -> None:
    pytest.importorskip(model)
    child = make_child(execmodel=model)
    gw = child.gw
    assert gw.remote_status().execmodel == model
    channel = gw.remote_exec(
        """
        import greenlet
        first = channel.receive()
        channel.send((first * 2, type(greenlet.getcurrent()).__name__))
        """
    )
    second = gw.remote_exec("channel.send(channel.receive() + 1)")
    second.send(1)
    assert second.receive(TIMEOUT) == 2
    channel.send(21)
    assert channel.receive(TIMEOUT)[0] == 42
    hung = gw.remote_exec("channel.send('go'); channel.receive()")
    assert hung.receive(TIMEOUT) == "go"
    child.gw.exit()
    child.proc.wait(TIMEOUT)


def test_killed_child_wakes_every_waiter(make_child: Callable[..., Any]) -> None:
    child = make_child()
    gw = child.gw
    waiting = [gw.remote_exec("channel.receive()") for _ in range(5)]
    ended = gw.execmodel.Event()
    first = gw.execmodel.Event()
    got: List[Any] = []
    with_callback = gw.remote_exec("channel.send('one'); channel.receive()")

    def callback(item: Any) -> None:
        got.append(item)
        if item == "END":
            ended.set()
        first.set()

    with_callback.setcallback(callback, endmarker="END")
    assert first.wait(TIMEOUT)
    assert gw.remote_status().numexecuting == 6
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(TIMEOUT)
    for channel in waiting:
        with pytest.raises(EOFError, match="went away"):
            channel.receive(TIMEOUT)
        assert isinstance(channel._getremoteerror(), EOFError)
        with pytest.raises(OSError):
            channel.send(1)
    assert ended.wait(TIMEOUT)
    assert got == ["one", "END"]
    gw.join(TIMEOUT)
    assert not gw.hasreceiver()
    with pytest.raises(OSError):
        gw.remote_exec("pass")


def test_interpreter_is_this_one(make_child: Callable[..., Any]) -> None:
    info = make_child().gw._remote_info()
    assert info["executable"] == sys.executable
    assert info["cwd"] == os.getcwd()
