"""popen gateways: this interpreter, every other one, options, noise, errors, post-mortem."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Callable

import parts
import pytest

from execnet_channel import NotProperlyTerminated
from execnet_transport import BootstrapError, Gateway, RInfo, XSpec
from execnet_transport._commands import popen_args

MakeGateway = Callable[..., Gateway]


def _remote_function(channel, factor):  # type: ignore[no-untyped-def]
    import sys

    channel.send((factor * 7, sys.version_info[0]))


def _module(tmp_path: Path) -> ModuleType:
    path = tmp_path / "remote_mod.py"
    path.write_text("import sys\nchannel.send(('module', __name__, sys.version_info[0]))\n")
    spec = importlib.util.spec_from_file_location("remote_mod", path)
    assert spec is not None
    assert spec.loader is not None
    return importlib.util.module_from_spec(spec)


def test_same_interpreter_imports_the_installed_packages(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    ch = gw.remote_exec(
        "import sys, execnet_channel, execnet_serial\n"
        "channel.send((sys.executable, execnet_channel.__file__, execnet_serial.__file__))"
    )
    executable, channel_file, serial_file = ch.receive(10)
    assert executable == sys.executable
    import execnet_channel
    import execnet_serial

    assert channel_file == execnet_channel.__file__  # imported from disk: no source crossed
    assert serial_file == execnet_serial.__file__


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_every_interpreter(target: str, makegw: MakeGateway, tmp_path: Path) -> None:
    python = parts.target_interpreter(target)
    gw = makegw(f"popen//python={python}")
    info = gw._rinfo()
    assert isinstance(info, RInfo)
    assert os.path.realpath(info.executable) == os.path.realpath(python) or target == "pypy3"
    if target != "pypy3":
        assert info.version_info[:2] == tuple(int(x) for x in target.split("."))
    assert gw.remote_exec("channel.send(channel.receive() + 1)").send(1) is None
    ch = gw.remote_exec("import execnet_channel\nchannel.send(execnet_channel.__spec__.origin)")
    assert ch.receive(10).startswith("<execnet bundle>/")  # nothing written to disk
    assert gw.remote_exec(_remote_function, factor=6).receive(10) == (42, 3)
    assert gw.remote_exec(_module(tmp_path)).receive(10) == ("module", "__channelexec__", 3)


def test_python_split_like_a_shell(makegw: MakeGateway) -> None:
    other = parts.other_interpreter()
    gw = makegw(f"popen//python=env EXECNET_T=from-env {other}")
    ch = gw.remote_exec("import os, sys; channel.send((os.environ['EXECNET_T'], sys.executable))")
    assert ch.receive(10) == ("from-env", other)


def test_rinfo_is_cached_and_updates(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    first = gw._rinfo()
    assert gw._rinfo() is first
    assert first.pid == gw.child_pid
    assert first["platform"] == sys.platform
    assert first.cwd == os.getcwd()
    gw.remote_exec("import os; os.chdir('/')").waitclose(10)
    assert gw._rinfo().cwd == first.cwd
    assert gw._rinfo(update=True).cwd == "/"
    # where execnet 2.1.2 keeps it: code written against it reads, presets and deletes it
    assert gw._cache_rinfo is gw._rinfo()
    gw._cache_rinfo = first
    assert gw._rinfo() is first
    del gw._cache_rinfo
    assert gw._rinfo().cwd == "/"


def test_rinfo_and_status_answer_while_the_main_thread_is_busy(makegw: MakeGateway) -> None:
    gw = makegw("popen//execmodel=main_thread_only")
    busy = gw.remote_exec("channel.send('busy'); channel.receive()")
    assert busy.receive(10) == "busy"
    assert gw._rinfo().pid == gw.child_pid
    assert gw.remote_status().numexecuting == 1
    busy.send("done")
    busy.waitclose(10)


def test_repr(makegw: MakeGateway) -> None:
    gw = makegw("popen//id=reprgw")
    assert repr(gw) == "<Gateway id='reprgw' receive-live, thread model, 0 active channels>"


# -- options, observed from the remote side -----------------------------------------


@pytest.mark.parametrize("other", [False, True], ids=["this-python", "other-python"])
def test_chdir_is_created(other: bool, makegw: MakeGateway, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    python = f"//python={parts.other_interpreter()}" if other else ""
    gw = makegw(f"popen//chdir={target}{python}")
    assert gw.remote_exec("import os; channel.send(os.getcwd())").receive(10) == str(target)


def test_relative_chdir(
    makegw: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    gw = makegw("popen//chdir=rel/dir")
    assert gw.remote_exec("import os; channel.send(os.getcwd())").receive(10) == str(
        tmp_path / "rel" / "dir"
    )


def test_nice(makegw: MakeGateway) -> None:
    mine = os.nice(0)
    gw = makegw("popen//nice=5")
    assert gw.remote_exec("import os; channel.send(os.nice(0))").receive(10) == min(mine + 5, 19)


def test_env(makegw: MakeGateway) -> None:
    gw = makegw("popen//env:EXECNET_A=1//env:EXECNET_B=two words//env:EXECNET_C=")
    ch = gw.remote_exec(
        "import os\n"
        "channel.send([os.environ.get(k) for k in ('EXECNET_A', 'EXECNET_B', 'EXECNET_C')])"
    )
    assert ch.receive(10) == ["1", "two words", ""]


def test_dont_write_bytecode(makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    gw = makegw("popen//dont_write_bytecode")
    assert gw.remote_exec("import sys; channel.send(sys.dont_write_bytecode)").receive(10) is True
    gw2 = makegw("popen")
    assert gw2.remote_exec("import sys; channel.send(sys.dont_write_bytecode)").receive(10) is False


@pytest.mark.parametrize("model", ["thread", "main_thread_only", "gevent", "eventlet"])
def test_execmodel(model: str, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//execmodel={model}")
    assert gw.remote_status().execmodel == model
    ch = gw.remote_exec("channel.send(channel.gateway.execmodel.backend)")
    assert ch.receive(30) == model


def test_local_execmodel(makegw: MakeGateway) -> None:
    gw = makegw("popen", execmodel="main_thread_only")
    assert gw.execmodel.backend == "main_thread_only"
    assert gw.remote_status().execmodel == "thread"


def test_remote_stdio_moved_away(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    ch = gw.remote_exec("import sys; print('noise' * 1000); channel.send(sys.stdin.read())")
    assert ch.receive(10) == ""


# -- noise at interpreter start -------------------------------------------------------


@pytest.mark.parametrize("other", [False, True], ids=["this-python", "other-python"])
def test_sitecustomize_printing_to_stdout(
    other: bool, makegw: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nprint('hello from sitecustomize')\nsys.stdout.write('\\x00' * 100)\n"
        "sys.stdout.flush()\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    python = f"//python={parts.other_interpreter()}" if other else ""
    gw = makegw(f"popen{python}")
    ch = gw.remote_exec("import sitecustomize; channel.send(sitecustomize.__file__)")
    assert ch.receive(10) == str(site / "sitecustomize.py")


# -- failures --------------------------------------------------------------------------


def test_python_that_is_not_python_raises_naming_the_spec(makegw: MakeGateway) -> None:
    with pytest.raises(BootstrapError) as info:
        makegw("popen//python=sh -c 'echo no python here >&2; exit 3'//id=notpy")
    text = str(info.value)
    assert "popen//python=sh -c" in text
    assert "exit status 3" in text
    assert "no python here" in text
    assert info.value.returncode == 3


@pytest.mark.parametrize("python", ["/bin/true", "/bin/echo", "/nonexistent/python3"])
def test_other_non_pythons(python: str, makegw: MakeGateway) -> None:
    with pytest.raises(BootstrapError, match=f"popen//python={python}"):
        makegw(f"popen//python={python}")


def test_failing_option_raises_with_the_remote_traceback(
    makegw: MakeGateway, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BootstrapError) as info:
        makegw(f"popen//chdir={blocker}/sub")
    assert "FileExistsError" in str(info.value) or "NotADirectoryError" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("popen//nice=high", "nice='high'"),
        ("popen//execmodel=asyncio", "execmodel='asyncio'"),
        ("popen//chdir", "chdir"),
        ("popen//ssh=host", "several gateway types"),
        ("python=x", "no gateway type"),
        ("popen//via=gw9", "via=gw9"),
    ],
)
def test_bad_specs_fail_before_anything_starts(spec: str, text: str, makegw: MakeGateway) -> None:
    with pytest.raises(ValueError, match=text):
        makegw(spec)


# -- post-mortem --------------------------------------------------------------------


def test_death_is_reported_with_status_and_stderr(makegw: MakeGateway) -> None:
    gw = makegw("popen//id=dying")
    waiter = gw.remote_exec("channel.receive()")
    gw.remote_exec(
        "import os, sys\nsys.stderr.write('last words of the child\\n'); sys.stderr.flush()\n"
        "os._exit(3)"
    )
    with pytest.raises(EOFError) as info:
        waiter.receive(10)
    text = str(info.value)
    assert "'dying'" in text
    assert "exit status 3" in text
    assert "last words of the child" in text
    gw.join(10)
    assert "exit status 3" in repr(gw)
    assert gw.wait_child(10) == 3
    # pytest-xdist's hook: not an EOFError (xdist would replace it by a fixed text)
    died = waiter._getremoteerror()
    assert isinstance(died, NotProperlyTerminated)
    assert not isinstance(died, EOFError)
    assert str(died).startswith("Not properly terminated: ")
    assert f"exit status 3 (pid {gw.child_pid})" in str(died)
    assert "last words of the child" in str(died)
    assert died.eof is info.value
    with pytest.raises(EOFError):  # every public path still raises the EOFError
        waiter.waitclose(10)


def test_kill_is_reported_as_a_signal(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    waiter = gw.remote_exec("channel.receive()")
    assert gw.child_pid is not None
    os.kill(gw.child_pid, signal.SIGKILL)
    with pytest.raises(EOFError, match="killed by signal SIGKILL"):
        waiter.receive(10)
    died = waiter._getremoteerror()
    assert isinstance(died, NotProperlyTerminated)
    assert f"killed by signal SIGKILL (pid {gw.child_pid})" in str(died)


def test_an_orderly_exit_is_no_death(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    waiter = gw.remote_exec("channel.receive()")
    gw.exit()
    gw.join(10)
    with pytest.raises(EOFError):
        waiter.receive(10)
    assert isinstance(waiter._getremoteerror(), EOFError)


def test_kill_process_and_wait(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    gw.remote_exec("import time; time.sleep(60)")
    assert gw.wait_child(0.01) is None
    gw.kill_child()
    assert gw.wait_child(10) == -signal.SIGKILL
    gw.kill_child()  # again: harmless


def test_exit_ends_the_process(makegw: MakeGateway) -> None:
    gw: Gateway = makegw("popen")
    gw.exit()
    gw.exit()
    gw.join(10)
    assert not gw.hasreceiver()
    assert gw.wait_child(10) == 0
    assert "not-receiving" in repr(gw)


def test_exit_tells_the_group_once(makegw: MakeGateway) -> None:
    class Group:
        def __init__(self) -> None:
            self.gone: list[Gateway] = []

        def gateway_exited(self, gateway: Gateway) -> None:
            self.gone.append(gateway)

    gw = makegw("popen")
    group = Group()
    gw.group = group
    gw.exit()
    gw.exit()
    assert group.gone == [gw]
    assert gw.group is None


def test_group_keeps_its_earlier_name(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    sentinel = object()
    gw._group = sentinel  # type: ignore[assignment]
    assert gw.group is sentinel
    assert gw._group is sentinel
    gw._group = None


def test_stderr_stays_visible(makegw: MakeGateway, capfd: pytest.CaptureFixture[str]) -> None:
    gw = makegw("popen")
    gw.remote_exec("import sys; sys.stderr.write('visible on stderr\\n')").waitclose(10)
    gw.exit()
    gw.join(10)
    gw.wait_child(10)
    assert gw._child is not None
    gw._child.stderr_tail(wait=5)  # the tee has copied everything
    assert "visible on stderr" in capfd.readouterr().err


def test_dedent_source(makegw: MakeGateway) -> None:
    gw = makegw("popen")
    source = textwrap.dedent(
        """
        import sys
        channel.send(sys.version_info[0])
        """
    )
    assert gw.remote_exec(source).receive(10) == 3


@pytest.mark.parametrize("model", ["gevent", "eventlet"])
def test_local_greenlet_models(model: str, makegw: MakeGateway) -> None:
    gw = makegw("popen//python=" + parts.other_interpreter(), execmodel=model)
    assert gw.execmodel.backend == model
    ch = gw.remote_exec("channel.send(channel.receive() + 1)")
    ch.send(1)
    assert ch.receive(10) == 2
    gw2 = makegw("popen", execmodel=model)
    assert gw2.remote_exec("channel.send(3)").receive(10) == 3


def test_compiled_bundle_is_reused_for_the_same_interpreter(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execnet_transport import _bootstrap

    monkeypatch.setattr(_bootstrap, "_compiled", {})
    other = parts.other_interpreter()
    first = makegw(f"popen//python={other}")
    assert len(_bootstrap._compiled) == 1
    ((command, compiled),) = _bootstrap._compiled.items()
    assert other in command
    assert compiled.magic
    assert compiled.modules
    second = makegw(f"popen//python={other}")  # gets the code objects, compiles nothing
    for gw in (first, second):
        ch = gw.remote_exec("import execnet_channel; channel.send(execnet_channel.__spec__.origin)")
        assert ch.receive(10) == "<execnet bundle>/execnet_channel/__init__.py"
        ch = gw.remote_exec("channel.send(1 / 0)")
        with pytest.raises(ch.RemoteError, match="ZeroDivisionError"):
            ch.receive(10)


def test_code_with_a_foreign_magic_number_is_not_used(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execnet_transport import _bootstrap

    other = parts.other_interpreter()
    command = tuple(popen_args(XSpec(f"popen//python={other}"), _bootstrap.first_stage("stdio")))
    bogus = _bootstrap.CompiledCode(b"XX\r\n", b"not marshal at all", b"nor this")
    monkeypatch.setattr(_bootstrap, "_compiled", {command: bogus})
    gw = makegw(f"popen//python={other}")
    assert gw.remote_exec("channel.send(2)").receive(10) == 2


def test_this_interpreter_gets_no_code(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execnet_transport import _bootstrap

    monkeypatch.setattr(_bootstrap, "_compiled", {})
    makegw("popen")
    assert _bootstrap._compiled == {}


_PATCHED = """
from gevent import monkey
monkey.patch_all()
from execnet_transport import XSpec, make_gateway
gw = make_gateway(XSpec("popen//id=patched"), execmodel="gevent")
waiter = gw.remote_exec("channel.receive()")
gw.remote_exec("import os, sys; sys.stderr.write('patched last words\\\\n'); os._exit(5)")
try:
    waiter.receive(20)
except EOFError as exc:
    print("EOF:", exc)
"""


def test_post_mortem_in_a_gevent_monkey_patched_process() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _PATCHED], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "exit status 5" in out.stdout
    assert "patched last words" in out.stdout
