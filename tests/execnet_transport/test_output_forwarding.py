"""Output forwarding (issue 13): the remote's fds 1/2 and log records reach the caller.

Every test ends its gateway with exit() and join(): the remote sends what its pipes
still hold before it closes the stream, and the caller's receiver delivers it before it
ends, so after join() everything written has arrived (no waiting on time).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Tuple

import parts
import pytest
from hostile.test_frames import rss_kib
from socketservers import Server
from sshd import SshServer

from execnet_transport import Gateway, XSpec, make_gateway

MakeGateway = Callable[..., Gateway]
Lines = List[Tuple[str, bytes]]

SOURCES = r"""
import os, subprocess, sys
print("printed")
sys.stdout.write("written\n")
os.write(1, b"os.write to fd 1\n")
subprocess.run(["echo", "from a child process"], check=True)
os.write(2, b"os.write to fd 2\n")
print("to sys.stderr", file=sys.stderr)
sys.stdout.write("partial last line")
channel.send("done")
"""

EXPECTED_STDOUT = [
    b"printed\n",
    b"written\n",
    b"os.write to fd 1\n",
    b"from a child process\n",
    b"partial last line",
]
EXPECTED_STDERR = [b"os.write to fd 2\n", b"to sys.stderr\n"]


def _collect(gw: Gateway) -> Lines:
    lines: Lines = []
    gw.forward_output(lambda stream, data: lines.append((stream, data)))
    return lines


def _end(gw: Gateway) -> None:
    gw.exit()
    gw.join(30)
    assert not gw.hasreceiver()
    gw.wait_child(30)  # reaped: no ResourceWarning for a running child


def _check_every_source(gw: Gateway) -> None:
    lines = _collect(gw)
    assert gw.remote_exec(SOURCES).receive(30) == "done"
    _end(gw)
    assert _stream(lines, "stdout") == EXPECTED_STDOUT
    assert _stream(lines, "stderr") == EXPECTED_STDERR


def _stream(lines: Lines, name: str) -> List[bytes]:
    return [data for stream, data in lines if stream == name]


@pytest.fixture(params=["thread", "main_thread_only", "gevent", "eventlet"])
def remote_model(request: pytest.FixtureRequest) -> str:
    if request.param in ("gevent", "eventlet"):
        pytest.importorskip(request.param)
    return str(request.param)


def test_every_source_reaches_the_callback(makegw: MakeGateway, remote_model: str) -> None:
    gw = makegw(f"popen//execmodel={remote_model}")
    _check_every_source(gw)


def test_default_destination_is_stderr_with_prefixes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw = make_gateway(XSpec("popen//id=gwp//forward_output"))
    try:
        assert gw.remote_exec(SOURCES).receive(30) == "done"
    finally:
        _end(gw)
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("[gwp] ")] == [
        "[gwp] printed",
        "[gwp] written",
        "[gwp] os.write to fd 1",
        "[gwp] from a child process",
        "[gwp] partial last line",
    ]
    assert [line for line in err if line.startswith("[gwp:err] ")] == [
        "[gwp:err] os.write to fd 2",
        "[gwp:err] to sys.stderr",
    ]


def test_environment_variable_turns_it_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXECNET_FORWARD_OUTPUT", "1")
    gw = make_gateway(XSpec("popen//id=gwe"))
    off = make_gateway(XSpec("popen//id=gwoff//forward_output=0"))
    try:
        gw.remote_exec("print('by the variable')").waitclose(30)
        off.remote_exec("print('not forwarded')").waitclose(30)
    finally:
        _end(gw)
        _end(off)
    err = capsys.readouterr().err
    assert "[gwe] by the variable\n" in err
    assert "not forwarded" not in err


def test_without_forwarding_stdout_is_discarded(
    makegw: MakeGateway, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXECNET_FORWARD_OUTPUT", raising=False)
    gw = makegw("popen")
    gw.remote_exec("import os; print('gone'); os.write(1, b'gone too')").waitclose(30)
    _end(gw)
    out, err = capfd.readouterr()
    assert "gone" not in out + err


def test_bad_values_are_refused_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="forward_output='maybe'"):
        make_gateway(XSpec("popen//id=x//forward_output=maybe"))
    with pytest.raises(ValueError, match="forward_logging='loud'"):
        make_gateway(XSpec("popen//id=x//forward_logging=loud"))
    monkeypatch.setenv("EXECNET_FORWARD_OUTPUT", "perhaps")
    with pytest.raises(ValueError, match="EXECNET_FORWARD_OUTPUT='perhaps'"):
        make_gateway(XSpec("popen//id=x"))


def test_lines_keep_their_order_per_stream(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    lines = _collect(gw)
    gw.remote_exec(
        "import os, sys\n"
        "for i in range(3000):\n"
        "    print(i)\n"
        "    if i % 3 == 0: os.write(2, b'%d\\n' % i)\n"
    ).waitclose(60)
    _end(gw)
    assert _stream(lines, "stdout") == [b"%d\n" % i for i in range(3000)]
    assert _stream(lines, "stderr") == [b"%d\n" % i for i in range(0, 3000, 3)]


def test_undecodable_bytes(makegw: MakeGateway, capsys: pytest.CaptureFixture[str]) -> None:
    exact = makegw("popen")
    lines = _collect(exact)
    text = makegw("popen//id=gwu//forward_output")
    source = "import os; os.write(1, b'caf\\xe9 \\xff\\n')"
    exact.remote_exec(source).waitclose(30)
    text.remote_exec(source).waitclose(30)
    _end(exact)
    _end(text)
    assert lines == [("stdout", b"caf\xe9 \xff\n")]
    assert "[gwu] caf\ufffd \ufffd\n" in capsys.readouterr().err


def test_output_before_os_exit_arrives_before_the_eoferror(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    lines = _collect(gw)
    seen_at_eof: Lines = []
    ch = gw.remote_exec(
        "import os, sys\n"
        "print('last words')\n"
        "os.write(2, b'and on fd 2')\n"
        "sys.stdout.write('unflushed')\n"
        "os._exit(3)\n"
    )

    def receive() -> None:
        try:
            ch.receive(30)
        except EOFError:
            seen_at_eof.extend(lines)
            raise

    with pytest.raises(EOFError, match="exit status 3"):
        receive()
    assert _stream(seen_at_eof, "stdout") == [b"last words\n", b"unflushed"]
    assert _stream(seen_at_eof, "stderr") == [b"and on fd 2"]


def test_the_post_mortem_holds_the_forwarded_stderr(makegw: MakeGateway) -> None:
    gw = makegw("popen//forward_output")
    ch = gw.remote_exec("import os; os.write(2, b'dying words\\n'); os._exit(4)")
    with pytest.raises(EOFError, match="exit status 4") as info:
        ch.receive(30)
    assert "last lines of its forwarded stderr:\ndying words" in str(info.value)


def test_a_raising_callback_is_reported_once_then_stderr(
    makegw: MakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = makegw("popen//id=gwr")
    calls: List[bytes] = []

    def callback(stream: str, data: bytes) -> None:
        calls.append(data)
        raise RuntimeError("callback broke")

    gw.forward_output(callback)
    gw.remote_exec("print('one'); print('two'); print('three')").waitclose(30)
    _end(gw)
    err = capsys.readouterr().err
    assert calls == [b"one\n"]
    assert err.count("RuntimeError: callback broke") == 1
    assert "the output callback" in err
    assert "[gwr] two\n[gwr] three\n" in err


def test_forwarding_can_be_turned_off(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    lines = _collect(gw)
    gw.remote_exec("print('on')").waitclose(30)
    gw.forward_output(output=False)
    gw.remote_exec("import os; print('off'); os.write(1, b'off too')").waitclose(30)
    gw.forward_output(lambda stream, data: lines.append((stream, data)))
    gw.remote_exec("print('on again')").waitclose(30)
    _end(gw)
    assert _stream(lines, "stdout") == [b"on\n", b"on again\n"]


LOGGING_SOURCE = """
import logging, threading
log = logging.getLogger("remote.module")
log.debug("not at this level")
log.info("info %s", "message")
log.warning("a warning")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it failed")
"""


def test_log_records_reach_the_local_logger(
    makegw: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="execnet.remote")
    gw = makegw("popen//id=gwl//forward_logging=INFO")
    gw.remote_exec(LOGGING_SOURCE).waitclose(30)
    _end(gw)
    records = [r for r in caplog.records if r.name == "execnet.remote.gwl"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "info message"),
        (logging.WARNING, "a warning"),
        (logging.ERROR, "it failed"),
    ]
    assert all(r.remote_name == "remote.module" for r in records)  # type: ignore[attr-defined]
    assert all(r.threadName == "MainThread" for r in records)
    assert records[2].exc_text is not None
    assert "ZeroDivisionError" in records[2].exc_text
    assert records[0].created <= records[1].created


def test_logging_without_a_level_keeps_the_remote_levels(
    makegw: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="execnet.remote")
    gw = makegw("popen//id=gwk")
    gw.forward_output(output=False, logging=True)
    gw.remote_exec(LOGGING_SOURCE).waitclose(30)
    _end(gw)
    levels = [r.levelno for r in caplog.records if r.name == "execnet.remote.gwk"]
    assert levels == [logging.WARNING, logging.ERROR]  # the remote root's WARNING holds


@pytest.mark.timeout(300)
def test_a_flood_is_slowed_and_channels_still_flow(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    received = [0]
    started = threading.Event()

    def count(stream: str, data: bytes) -> None:
        received[0] += len(data)
        started.set()

    gw.forward_output(count)
    total = 100 * 1024 * 1024
    line = b"x" * 1023 + b"\n"
    flood = gw.remote_exec(
        "import os, threading\n"
        f"line = {line!r}\n"
        "def flood():\n"
        f"    for _ in range({total // (len(line) * 64)}): os.write(1, line * 64)\n"
        "    channel.send('flooded')\n"
        "threading.Thread(target=flood).start()\n"
        "for item in channel: channel.send(item)\n"
    )
    assert started.wait(60)
    before = rss_kib()
    echoes = gw.remote_exec("for item in channel: channel.send(item + 1)")
    for i in range(50):  # channel traffic beside the flood
        echoes.send(i)
        assert echoes.receive(60) == i + 1
    flood.send("ping")
    assert flood.receive(60) == "ping"
    echoes.close()
    items = [flood.receive(300)]
    flood.close()
    grown = rss_kib() - before
    _end(gw)
    assert items == ["flooded"]
    assert received[0] == total
    assert grown < 16 * 1024, f"the caller grew by {grown} KiB during the flood"


def test_over_ssh(sshd: SshServer, makegw: MakeGateway) -> None:
    gw = makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}")
    _check_every_source(gw)


def test_over_socket(servers: Callable[..., Server], makegw: MakeGateway) -> None:
    server = servers()
    gw = makegw(f"socket={server.address}")
    _check_every_source(gw)
    assert "printed" not in server.log(), server.log()


def test_via(makegw: MakeGateway) -> None:
    hop = makegw("popen")
    gw = makegw("popen//via=hop", via=hop)
    _check_every_source(gw)


@pytest.mark.parametrize("python", ["3.8", "3.13", "pypy3"])
def test_other_interpreters(makegw: MakeGateway, python: str) -> None:
    executable = parts.pypy3() if python == "pypy3" else parts.interpreter(python)
    gw = makegw(f"popen//python={executable}")
    lines = _collect(gw)
    gw.forward_output(lambda stream, data: lines.append((stream, data)), logging="INFO")
    source = SOURCES + "import logging; logging.getLogger('x').info('logged')\n"
    assert gw.remote_exec(source).receive(60) == "done"
    _end(gw)
    assert _stream(lines, "stdout") == EXPECTED_STDOUT
    assert _stream(lines, "stderr") == EXPECTED_STDERR


FLOOD = """
import os, sys
def flood():
    for i in range(80000):
        print("%08d" % i + "y" * 91)  # 100 bytes a line: 8 MB, far over the window
    sys.stdout.flush()
    channel.send("flooded")
if channel.gateway.execmodel.backend in ("gevent", "eventlet"):
    flood()  # a greenlet that prints into a full pipe must let the others run
else:
    import threading
    threading.Thread(target=flood).start()
channel.receive()
"""


@pytest.mark.timeout(300)
def test_a_printing_flood_under_each_model(makegw: MakeGateway, remote_model: str) -> None:
    gw = makegw(f"popen//execmodel={remote_model}")
    received: List[bytes] = []
    first = threading.Event()

    def keep(stream: str, data: bytes) -> None:
        received.append(data)
        first.set()

    gw.forward_output(keep)
    flood = gw.remote_exec(FLOOD)
    assert first.wait(60)
    status = gw.remote_status()  # answered by the remote's receiver beside the flood
    assert status.numexecuting >= 1
    assert flood.receive(240) == "flooded"
    flood.send("end")
    flood.waitclose(60)
    _end(gw)
    assert received == [b"%08d" % i + b"y" * 91 + b"\n" for i in range(80000)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["popen", "via"])
def test_a_slow_caller_slows_the_remote(makegw: MakeGateway, tmp_path: Path, how: str) -> None:
    # The callback holds the caller's receiver until the gate opens; meanwhile the
    # remote's writer must stop within the window and the pipes (a few MiB), however
    # long it is given: it reports how far it got in a file beside the test. (Over
    # pipes the stream's own backpressure would stop it too; a via hop queues what the
    # proxy sends without limit, so there only the window does.)
    progress = tmp_path / "written"
    if how == "via":
        hop = makegw("popen")
        gw = makegw("popen//via=hop", via=hop)
    else:
        gw = makegw("popen")
    before = rss_kib()
    gate = threading.Event()
    received = [0]

    def slow(stream: str, data: bytes) -> None:
        gate.wait(120)
        received[0] += len(data)

    gw.forward_output(slow)
    total = 64 * 1024 * 1024
    flood = gw.remote_exec(
        "import os\n"
        f"path, block = {str(progress)!r}, b'z' * 65535 + b'\\n'\n"
        f"for i in range({total // 65536}):\n"
        "    os.write(1, block)\n"
        "    with open(path + '.new', 'w') as f: f.write(str((i + 1) * len(block)))\n"
        "    os.replace(path + '.new', path)\n"
    )

    def written() -> int:
        try:
            return int(progress.read_text())
        except (OSError, ValueError):
            return 0

    deadline = time.monotonic() + 120
    while written() == 0 and time.monotonic() < deadline:  # the flood has begun
        time.sleep(0.01)
    assert written() > 0
    # How far it gets depends on the pipes' sizes (a loaded machine's pipes may be
    # small); it must stop far below the flood's 64 MiB, however long it is given.
    time.sleep(1.0)  # time for a missing bound to show (the bound holds at any moment)
    assert written() < 8 * 1024 * 1024, "the remote was not slowed down"
    assert rss_kib() - before < 16 * 1024, "the caller buffered the remote's output"
    gate.set()
    flood.waitclose(240)
    _end(gw)
    assert received[0] == total


LOCAL_MODEL = """
import sys
from execnet_transport import XSpec, make_gateway
gw = make_gateway(XSpec("popen//id=local//execmodel=" + sys.argv[1]), execmodel=sys.argv[1])
lines = []
gw.forward_output(lambda stream, data: lines.append((stream, data)), logging=True)
ch = gw.remote_exec(
    "import logging, os; print('from', channel.gateway.execmodel.backend)\\n"
    "os.write(2, b'fd 2\\\\n'); logging.getLogger('r').error('logged')\\n"
    "channel.send(channel.receive() + 1)"
)
ch.send(41)
assert ch.receive(30) == 42
gw.exit()
gw.join(30)
gw.wait_child(30)
print(sorted(lines))
"""


@pytest.mark.parametrize("model", ["thread", "main_thread_only", "gevent", "eventlet"])
def test_under_each_local_execmodel(model: str) -> None:
    if model in ("gevent", "eventlet"):
        pytest.importorskip(model)
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", LOCAL_MODEL, model],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = [("stderr", b"fd 2\n"), ("stdout", f"from {model}\n".encode())]
    assert result.stdout.strip() == repr(expected)
    assert "execnet.remote.local" not in result.stderr  # no handler here: lastResort
    assert "logged" in result.stderr
