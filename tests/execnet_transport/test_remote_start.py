"""A remote's start: the short first stage, the code sent along, the end.

What makes a popen gateway start fast, and that none of it changes what the remote runs:
the `-c` program only reads the frame and runs the second stage (as a code object when it is
for the child's interpreter), a child of this interpreter gets the code of the modules
it imports (from the .pyc files the import system would use), and the opener sees the
end of a terminated remote before that process's shutdown (whose atexit handlers still
run). The first compile (execnet_channel._source) is tested in
tests/execnet_channel/test_source_compile.py.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import parts
import pytest

from execnet_transport import Gateway, _bootstrap, _connect, _own_code, _stage
from execnet_transport._process import ChildProcess

MakeGateway = Callable[..., Gateway]

# -- the first stage and the stage ----------------------------------------------------


def test_this_interpreter_gets_the_stage_compiled() -> None:
    magic, code, source = _bootstrap.stage_entry(("x",), True)
    assert magic == importlib.util.MAGIC_NUMBER
    assert source == _bootstrap.stage_source()
    assert marshal.loads(code).co_filename == str(Path(_stage.__file__).resolve())
    assert _bootstrap.stage_entry(("never-seen",), False) == _bootstrap.stage_source()


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_stage_and_first_stage_compile_on_every_target(target: str) -> None:
    python = parts.target_interpreter(target)
    stages = ("stdio", "socket")
    for text in (*map(_bootstrap.first_stage, stages), _bootstrap.stage_source()):
        subprocess.run([python, "-c", f"compile({text!r}, 'stage', 'exec')"], check=True)


def test_a_stage_for_another_interpreter_falls_back_to_the_source(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = (b"XX\r\n", b"not marshal at all", _bootstrap.stage_source())
    monkeypatch.setattr(_bootstrap, "stage_entry", lambda command, same: bogus)
    gw = makegw("popen")
    assert gw.remote_exec("channel.send(5)").receive(10) == 5


def test_another_interpreter_sends_its_stage_code_once(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bootstrap, "_compiled", {})
    other = parts.other_interpreter()
    first = makegw(f"popen//python={other}")
    ((command, compiled),) = _bootstrap._compiled.items()
    assert other in command
    assert compiled.magic
    assert compiled.stage
    entry = _bootstrap.stage_entry(command, False)
    assert entry == (compiled.magic, compiled.stage, _bootstrap.stage_source())
    second = makegw(f"popen//python={other}")  # runs the stage from the code object
    for gw in (first, second):
        assert gw.remote_exec("channel.send(7)").receive(10) == 7


# -- the code of this interpreter's modules --------------------------------------------

_LOADERS = """
import sys, execnet_channel, execnet_serial._decoder
channel.send([
    (name, type(sys.modules[name].__spec__.loader).__name__, sys.modules[name].__file__)
    for name in ("execnet_channel", "execnet_serial._decoder")
] + [list(execnet_channel.__path__), [getattr(f, "__name__", "") for f in sys.meta_path]])
"""


def test_this_interpreter_imports_its_packages_with_the_code_sent(
    makegw: MakeGateway,
) -> None:
    import execnet_channel
    import execnet_serial._decoder

    gw = makegw("popen")
    *modules, path, finders = gw.remote_exec(_LOADERS).receive(10)
    assert modules == [
        ("execnet_channel", "OwnCodeLoader", execnet_channel.__file__),
        ("execnet_serial._decoder", "OwnCodeLoader", execnet_serial._decoder.__file__),
    ]
    assert path == list(execnet_channel.__path__)
    assert "OwnCodeFinder" not in finders  # the finder is gone once the start is over


def test_the_code_sent_is_dropped_after_the_start_and_reloads_read_the_files(
    makegw: MakeGateway,
) -> None:
    from execnet_channel import _frames

    gw = makegw("popen")
    ch = gw.remote_exec(
        "import importlib, execnet_channel._frames as frames\n"
        "own = frames.__spec__.loader.own\n"
        "importlib.reload(frames)\n"
        "channel.send((own.index, own.data, frames.HEADER_SIZE))\n"
    )
    assert ch.receive(10) == ({}, b"", _frames.HEADER_SIZE)


def test_code_with_a_foreign_magic_number_is_read_and_left(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    (magic, index, length), tail = _own_code.own_entry() or ((b"", {}, 0), b"")
    assert magic == importlib.util.MAGIC_NUMBER
    assert length == len(tail) > 0
    entry = ((b"XX\r\n", index, length), tail)
    monkeypatch.setattr(_connect, "own_entry", lambda: entry)
    gw = makegw("popen")
    *modules, _, _ = gw.remote_exec(_LOADERS).receive(10)
    assert [loader for _, loader, _ in modules] == ["SourceFileLoader"] * 2
    ch = gw.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(21)
    assert ch.receive(10) == 42


def _package(root: Path, value: int) -> None:
    pkg = root / "ownpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(f"from ._impl import value\nVALUE = {value}\n")
    (pkg / "_impl.py").write_text(f"value = {value}\n")


def test_own_code_follows_edits_and_ignores_stale_pyc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, 1)
    monkeypatch.syspath_prepend(str(tmp_path))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp_path)], check=True)
    first = _own_code.own_code(("ownpkg",))
    assert set(first) == {"ownpkg", "ownpkg._impl"}
    namespace: dict[str, Any] = {}
    exec(marshal.loads(first["ownpkg._impl"][1]), namespace)
    assert namespace["value"] == 1
    impl = tmp_path / "ownpkg" / "_impl.py"
    impl.write_text("value = 22\n")  # a different size: the .pyc is stale now
    later = time.time() + 5
    os.utime(impl, (later, later))
    second = _own_code.own_code(("ownpkg",))
    exec(marshal.loads(second["ownpkg._impl"][1]), namespace)
    assert namespace["value"] == 22
    assert second["ownpkg"] == first["ownpkg"]
    assert "ownpkg.extra" not in second
    (tmp_path / "ownpkg" / "extra.py").write_text("more = 3\n")  # a new module
    os.utime(tmp_path / "ownpkg", (later, later))  # (whatever the mtime granularity)
    third = _own_code.own_code(("ownpkg",))
    exec(marshal.loads(third["ownpkg.extra"][1]), namespace)
    assert namespace["more"] == 3


# -- writing the frame -----------------------------------------------------------------


@pytest.fixture
def high_descriptors() -> Any:
    """Descriptors 0-1099 taken, so what is opened next is numbered 1100 or above."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit is {hard}; this test needs 1200")
    if soft != resource.RLIM_INFINITY and soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    null = os.open(os.devnull, os.O_RDONLY)
    taken = [os.dup(null) for _ in range(1100)]
    taken.append(null)
    yield
    for fd in taken:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("high_descriptors")
def test_a_child_whose_pipes_are_numbered_above_1024_starts(makegw: MakeGateway) -> None:
    gw = makegw("popen")  # select() would fail here: ValueError, filedescriptor out of range
    assert gw._io.read_fd >= 1024  # type: ignore[attr-defined]
    assert gw.remote_exec("channel.send(1024)").receive(10) == 1024


def test_a_child_that_never_reads_its_input_times_out() -> None:
    child = ChildProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(TimeoutError):  # (a hang would be pytest's timeout)
            child.write_all(b"x" * (8 << 20), time.monotonic() + 0.5)
    finally:
        child.kill()
        child.close_fds()
        child.wait(10)


# -- the end ---------------------------------------------------------------------------


def test_the_opener_sees_the_end_before_the_remote_shuts_down(
    makegw: MakeGateway, tmp_path: Path
) -> None:
    flag = tmp_path / "atexit-ran"
    go, flag = tmp_path / "go", tmp_path / "atexit-ran"
    gw = makegw("popen")
    gw.remote_exec(
        "import atexit, os, time\n"
        # the exit watchdog (2 s) must not end this process before the test says go:
        # on a loaded machine the checks below may take longer than that
        "import execnet_channel._serve\n"
        "execnet_channel._serve.EXIT_GRACE = 300.0\n"
        "def last():\n"
        "    deadline = time.monotonic() + 300\n"
        f"    while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        f"    open({str(flag)!r}, 'w').close()\n"
        "atexit.register(last)\n"
        "channel.send(1)\n"
    ).receive(30)
    gw.exit()
    gw.join(10)
    assert not gw.hasreceiver()
    assert gw.wait_child(0) is None  # still in its atexit handler
    go.touch()
    assert gw.wait_child(30) == 0
    assert flag.exists()  # user atexit handlers still run


@pytest.mark.parametrize("mode", ["CHECKED_HASH", "UNCHECKED_HASH", "TIMESTAMP"])
def test_own_code_takes_a_current_pyc_of_any_kind(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import py_compile

    _package(tmp_path, 5)
    monkeypatch.syspath_prepend(str(tmp_path))
    impl = tmp_path / "ownpkg" / "_impl.py"
    pyc = importlib.util.cache_from_source(str(impl))
    invalidation = getattr(py_compile.PycInvalidationMode, mode)
    py_compile.compile(str(impl), cfile=pyc, invalidation_mode=invalidation, doraise=True)
    payload = Path(pyc).read_bytes()[16:]
    assert _own_code.own_code(("ownpkg",))["ownpkg._impl"][1] == payload
    if mode == "CHECKED_HASH":  # a changed source of the same size and mtime is seen
        stat = impl.stat()
        impl.write_text("value = 6\n")
        os.utime(impl, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        _own_code._code_cache.clear()
        code = _own_code.own_code(("ownpkg",))["ownpkg._impl"][1]
        assert code != payload
        namespace: dict[str, Any] = {}
        exec(marshal.loads(code), namespace)
        assert namespace["value"] == 6
