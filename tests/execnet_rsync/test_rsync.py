"""RSync end to end: real trees on disk synced to real popen gateways (this interpreter
and another one), one or two targets, changes, deletes, links, modes, failures."""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import parts
import pytest

from execnet_rsync import RSync, RSyncError, _rsync
from execnet_rsync._reading import SourceFile

Snapshot = Callable[[Path | str], dict[bytes, tuple[object, ...]]]
MakeTree = Callable[[Path, dict[str, Any]], Path]


@pytest.fixture
def group() -> Iterator[Any]:
    from execnet_group import Group

    group = Group()
    yield group
    group.terminate(10)


@pytest.fixture
def gw(group: Any) -> Any:
    return group.makegateway("popen")


class Recorder:
    """callback and finishedcallback that remember what they heard."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, Any]] = []
        self.finished = 0

    def __call__(self, kind: str, number: int, channel: Any) -> None:
        self.events.append((kind, number, channel))

    def finish(self) -> None:
        self.finished += 1

    def kinds(self, kind: str) -> list[int]:
        return [number for k, number, _ in self.events if k == kind]


class Reporting(RSync):
    """Records what _report_send_file hears instead of printing it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reported: list[tuple[Any, str]] = []

    def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
        self.reported.append((gateway, modified_rel_path))

    def sent(self) -> list[str]:
        names = sorted(name for _, name in self.reported)
        self.reported.clear()
        return names


def test_full_then_unchanged(tree: Path, tmp_path: Path, gw: Any, snapshot: Snapshot) -> None:
    dest = tmp_path / "new" / "parents" / "dest"
    rec = Recorder()
    rsync = Reporting(tree, callback=rec)
    rsync.add_target(gw, dest, finishedcallback=rec.finish)
    rsync.send()
    assert snapshot(dest) == snapshot(tree)
    sizes = sorted(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert rec.kinds("list") == [sum(sizes)]
    assert sorted(rec.kinds("ack")) == sizes
    assert all(channel is not None for _, _, channel in rec.events)
    assert rec.finished == 1
    assert len(rsync.sent()) == 6

    rec.events.clear()
    # as in execnet 2.1.2, the targets are done after a send(): add them again
    with pytest.raises(OSError, match="no targets"):
        rsync.send()
    assert rsync.send(raises=False) is None
    assert rec.events == []
    rsync.add_target(gw, dest, finishedcallback=rec.finish)
    rsync.send()  # the same object again: nothing to transfer, the callback still hears it
    assert rec.kinds("list") == [0]
    assert rec.kinds("ack") == []
    assert rec.finished == 2
    assert rsync.sent() == []
    assert snapshot(dest) == snapshot(tree)

    # the same gateway and destdir added twice before a send(): the later one replaces it
    finished_again: list[bool] = []
    rsync.add_target(gw, dest, finishedcallback=rec.finish)
    rsync.add_target(gw, dest, finishedcallback=lambda: finished_again.append(True))
    rec.events.clear()
    rsync.send()
    assert rec.kinds("list") == [0]
    assert (rec.finished, finished_again) == (2, [True])


@pytest.mark.parametrize("execmodel", ["thread", "main_thread_only", "eventlet", "gevent"])
def test_remote_execution_models(
    execmodel: str, tree: Path, tmp_path: Path, group: Any, snapshot: Snapshot
) -> None:
    gw = group.makegateway(f"popen//execmodel={execmodel}")
    rec = Recorder()
    rsync = RSync(tree, callback=rec, verbose=False)
    rsync.add_target(gw, tmp_path / "dest", finishedcallback=rec.finish)
    rsync.send()
    rsync.add_target(gw, tmp_path / "dest", finishedcallback=rec.finish)
    rsync.send()
    assert snapshot(tmp_path / "dest") == snapshot(tree)
    assert rec.kinds("list")[1:] == [0]
    assert rec.finished == 2


def test_changed_files_only_cross(tree: Path, tmp_path: Path, gw: Any, snapshot: Snapshot) -> None:
    dest = tmp_path / "dest"
    rsync = Reporting(tree)
    rsync.add_target(gw, str(dest) + "/")  # a trailing slash is fine
    rsync.send()
    rsync.sent()
    (tree / "a.txt").write_text("ALPHA\n")  # same size, new content, new mtime
    os.utime(tree / "a.txt", ns=(1, 1_500_000_000_000_000_000))
    os.utime(tree / "empty", ns=(1, 1_600_000_000_000_000_000))  # same content, new mtime
    (tree / "sub" / "b.bin").write_bytes(b"shorter")
    (tree / "added").write_text("new")
    rsync.add_target(gw, str(dest) + "/")
    rsync.send()
    assert rsync.sent() == ["a.txt", "added", "sub/b.bin"]
    assert snapshot(dest) == snapshot(tree)


def test_delete(
    tree: Path, tmp_path: Path, gw: Any, make_tree: MakeTree, snapshot: Snapshot
) -> None:
    dest = make_tree(tmp_path / "dest", {"extra": "x", "sub/extra/deep": "y"})
    rsync = RSync(tree, verbose=False)
    rsync.add_target(gw, dest)
    rsync.send()
    assert (dest / "extra").exists()
    rsync = RSync(tree, verbose=False)
    rsync.add_target(gw, dest, delete=True)
    (tree / "a.txt").unlink()
    rsync.send()
    assert snapshot(dest) == snapshot(tree)


def test_symlinks(tmp_path: Path, gw: Any, make_tree: MakeTree) -> None:
    src = make_tree(tmp_path / "src", {"pkg/mod.py": "x = 1\n", "data/big": "d" * 1000})
    outside = make_tree(tmp_path / "outside", {"o": "outside"})
    os.symlink(str(src / "pkg" / "mod.py"), src / "abs_inside")
    os.symlink("pkg/mod.py", src / "rel_inside")
    os.symlink(str(outside / "o"), src / "abs_outside")
    os.symlink(str(src / "data"), src / "dirlink")
    os.symlink("missing", src / "dangling")
    dest = tmp_path / "dest"
    rsync = RSync(src, verbose=False)
    rsync.add_target(gw, dest)
    rsync.send()
    # an absolute link inside the source: the same file inside the destination
    assert os.readlink(dest / "abs_inside") == str(dest / "pkg" / "mod.py")
    assert (dest / "abs_inside").read_text() == "x = 1\n"
    assert os.readlink(dest / "rel_inside") == "pkg/mod.py"
    assert os.readlink(dest / "abs_outside") == str(outside / "o")
    assert os.readlink(dest / "dirlink") == str(dest / "data")  # a link, not a copy
    assert os.readlink(dest / "dangling") == "missing"
    assert sorted(os.listdir(dest)) == sorted(os.listdir(src))


def test_relative_destdir_with_links(tmp_path: Path, group: Any, make_tree: MakeTree) -> None:
    src = make_tree(tmp_path / "src", {"a/f": "x"})
    os.symlink(str(src / "a" / "f"), src / "link")
    remote_cwd = tmp_path / "remote_cwd"
    gw = group.makegateway(f"popen//chdir={remote_cwd}")
    rsync = RSync(src, verbose=False)
    rsync.add_target(gw, "rel/dest")
    rsync.send()
    assert (remote_cwd / "rel" / "dest" / "link").read_text() == "x"
    # absolute, made from the remote's working directory (execnet 2.1.2 writes the
    # relative destdir into the link, which then points nowhere)
    assert os.readlink(remote_cwd / "rel" / "dest" / "link") == str(
        remote_cwd / "rel" / "dest" / "a" / "f"
    )


def test_modes_and_mtimes(tmp_path: Path, gw: Any, make_tree: MakeTree, snapshot: Snapshot) -> None:
    src = make_tree(tmp_path / "src", {"run.sh": "#!/bin/sh\n", "ro/f": "1", "secret": "s"})
    os.chmod(src / "run.sh", 0o755)
    os.chmod(src / "secret", 0o600)
    os.chmod(src / "ro" / "f", 0o444)
    os.chmod(src / "ro", 0o555)
    os.utime(src / "secret", ns=(1, 1_234_567_890_123_456_789))
    dest = tmp_path / "dest"
    try:
        rsync = RSync(src, verbose=False)
        rsync.add_target(gw, dest)
        rsync.send()
        assert snapshot(dest) == snapshot(src)
        assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555
        assert os.stat(dest / "secret").st_mtime_ns == 1_234_567_890_123_456_789
        # the read-only source directory changes: syncs again into the read-only copy
        os.chmod(src / "ro", 0o755)
        os.chmod(src / "ro" / "f", 0o644)
        (src / "ro" / "f").write_text("22")
        (src / "ro" / "g").write_text("new")
        os.chmod(src / "ro", 0o555)
        rsync.add_target(gw, dest)
        rsync.send()
        assert snapshot(dest) == snapshot(src)
    finally:
        for root in (src, dest):
            if (root / "ro").exists():
                os.chmod(root / "ro", 0o755)


def test_two_targets_at_once(
    tree: Path, tmp_path: Path, group: Any, snapshot: Snapshot, make_tree: MakeTree
) -> None:
    gw1, gw2 = group.makegateway("popen"), group.makegateway("popen")
    one, two = tmp_path / "one", tmp_path / "two"
    first = RSync(tree, verbose=False)
    first.add_target(gw1, one)
    first.send()
    (tree / "a.txt").write_text("changed since one was synced\n")
    rec = Recorder()
    rsync = Reporting(tree, callback=rec)
    rsync.add_target(gw1, one, finishedcallback=rec.finish)
    rsync.add_target(gw2, two, finishedcallback=rec.finish)
    rsync.send()
    assert snapshot(one) == snapshot(tree) == snapshot(two)
    sent = sorted((gw.id, name) for gw, name in rsync.reported)
    assert [name for gid, name in sent if gid == gw1.id] == ["a.txt"]
    assert len([name for gid, name in sent if gid == gw2.id]) == 6
    assert rec.finished == 2
    channels = {channel for _, _, channel in rec.events}
    assert len(channels) == 2


def test_large_files_stream_in_pieces(tmp_path: Path, gw: Any, make_tree: MakeTree) -> None:
    content = os.urandom(1 << 20) * 3 + b"tail"
    src = make_tree(tmp_path / "src", {"big": content, "small": "s"})
    rec = Recorder()
    rsync = RSync(src, callback=rec, verbose=False)
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    assert (tmp_path / "dest" / "big").read_bytes() == content
    assert sorted(rec.kinds("ack")) == [1, len(content)]


@pytest.mark.parametrize("which", parts.TRAVELLING_TARGETS)
def test_other_interpreter(
    which: str, tree: Path, tmp_path: Path, group: Any, snapshot: Snapshot
) -> None:
    gw = group.makegateway(f"popen//python={parts.target_interpreter(which)}")
    os.symlink(str(tree / "a.txt"), tree / "link")
    dest = tmp_path / "dest"
    rsync = Reporting(tree)
    rsync.add_target(gw, dest, delete=True)
    rsync.send()
    link = ("link", os.fsencode(str(dest / "a.txt")))
    assert snapshot(dest) == {**snapshot(tree), b"link": link}
    assert len(rsync.sent()) == 6
    (tree / "sub" / "deeper" / "c.py").write_text("print('C')\n")
    os.utime(tree / "sub" / "deeper" / "c.py", ns=(1, 10**18))
    rsync.add_target(gw, dest, delete=True)
    rsync.send()
    assert rsync.sent() == ["sub/deeper/c.py"]
    assert snapshot(dest) == {**snapshot(tree), b"link": link}


def test_pytest_xdist_style_subclass(
    tmp_path: Path, group: Any, make_tree: MakeTree, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shape of pytest-xdist's HostRSync, kept working."""

    class HostRSync(RSync):
        def __init__(self, sourcedir: Path, *, ignores: list[str] | None = None,
                     verbose: bool = True) -> None:  # fmt: skip
            self._ignores = ignores or []
            super().__init__(sourcedir=sourcedir, verbose=verbose)

        def filter(self, path: str) -> bool:
            return not any(Path(path).match(pattern) for pattern in self._ignores)

        def add_target_host(self, gateway: Any, finished: Callable[[], None] | None = None) -> None:
            remotepath = os.path.basename(self._sourcedir)
            super().add_target(gateway, remotepath, finishedcallback=finished, delete=True)

        def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
            if self._verbose:
                path = os.path.basename(self._sourcedir) + "/" + modified_rel_path
                print(f"{gateway.spec}:{gateway.spec.chdir} <= {path}")

    src = make_tree(
        tmp_path / "proj", {"pkg/__init__.py": "", "pkg/.git/HEAD": "x", "tests/t.py": ""}
    )
    workdir = tmp_path / "worker"
    gw = group.makegateway(f"execmodel=main_thread_only//popen//chdir={workdir}")
    finished: list[bool] = []
    rsync = HostRSync(src, ignores=["*.git"], verbose=True)
    assert rsync._sourcedir == str(src)
    assert rsync._verbose is True
    rsync.add_target_host(gw, finished=lambda: finished.append(True))
    rsync.send()
    assert finished == [True]
    copy = workdir / "proj"
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*")) == [
        "pkg", "pkg/__init__.py", "tests", "tests/t.py",
    ]  # fmt: skip
    out = capsys.readouterr().out
    assert f"{gw.spec}:{workdir} <= proj/pkg/__init__.py" in out
    # again at once, as xdist does per node: the main-thread-only remote is free again
    (src / "pkg" / "__init__.py").write_text("changed = True\n")
    (copy / "tests" / "stale.py").write_text("")
    rsync.add_target_host(gw, finished=lambda: finished.append(True))
    rsync.send()
    assert finished == [True, True]
    assert (copy / "pkg" / "__init__.py").read_text() == "changed = True\n"
    assert not (copy / "tests" / "stale.py").exists()


def test_verbose_prints_each_file(
    tree: Path, tmp_path: Path, gw: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rsync = RSync(tree)
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    lines = capsys.readouterr().out.splitlines()
    assert any(line.endswith(f"sub/b.bin <= {tree / 'sub' / 'b.bin'}") for line in lines)
    quiet = RSync(tree, verbose=False)
    quiet.add_target(gw, tmp_path / "dest2")
    quiet.send()
    assert capsys.readouterr().out == ""


def test_special_files_are_skipped_with_a_message(
    tmp_path: Path, gw: Any, make_tree: MakeTree, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_tree(tmp_path / "src", {"f": "x"})
    os.mkfifo(src / "fifo")
    rsync = RSync(src, verbose=False)
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    assert os.listdir(tmp_path / "dest") == ["f"]
    err = capsys.readouterr().err
    assert "skipping 'fifo'" in err
    assert "a fifo: only files, directories and links are synced" in err


def test_no_targets(tree: Path) -> None:
    rsync = RSync(tree)
    with pytest.raises(OSError, match="no targets"):
        rsync.send()
    rsync.send(raises=False)
    with pytest.raises(TypeError, match="not a gateway"):
        rsync.add_target(object(), "dest")  # type: ignore[arg-type]


def _pid(gateway: Any) -> int:
    pid = gateway.child_pid
    assert isinstance(pid, int)
    return pid


@pytest.mark.parametrize("raises", [True, False])
def test_a_dying_target_fails_alone(
    raises: bool, tmp_path: Path, group: Any, snapshot: Snapshot, capsys: Any
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for n in range(24):
        (src / f"f{n}").write_bytes(os.urandom(1 << 20))
    doomed, healthy = group.makegateway("popen"), group.makegateway("popen")
    finished: list[str] = []

    def kill_when_listed(kind: str, number: int, channel: Any) -> None:
        if kind == "list" and channel.gateway is doomed:
            os.kill(_pid(doomed), signal.SIGKILL)

    rsync = RSync(src, callback=kill_when_listed, verbose=False)
    rsync.add_target(doomed, tmp_path / "doomed", finishedcallback=lambda: finished.append("d"))
    rsync.add_target(healthy, tmp_path / "ok", finishedcallback=lambda: finished.append("h"))
    if raises:
        with pytest.raises(RSyncError, match=f"gateway {doomed.id} -> ") as info:
            rsync.send()
        assert [gw for gw, _, _ in info.value.failures] == [doomed]
    else:
        rsync.send(raises=False)
        assert f"rsync failed for gateway {doomed.id} -> " in capsys.readouterr().err
    assert finished == ["h"]
    assert snapshot(tmp_path / "ok") == snapshot(src)
    assert not [p for p in os.listdir(tmp_path / "ok") if "rsync-tmp" in p]


def test_an_exited_gateway_is_reported(tree: Path, tmp_path: Path, group: Any) -> None:
    gone, fine = group.makegateway("popen"), group.makegateway("popen")
    gone.exit()
    gone.join()
    rsync = RSync(tree, verbose=False)
    rsync.add_target(gone, tmp_path / "x")
    rsync.add_target(fine, tmp_path / "y")
    with pytest.raises(RSyncError, match=f"gateway {gone.id}"):
        rsync.send()
    assert (tmp_path / "y" / "a.txt").exists()


def test_a_failing_filter_leaves_no_remote_waiting(tree: Path, tmp_path: Path, gw: Any) -> None:
    class Broken(RSync):
        def filter(self, path: str) -> bool:
            raise RuntimeError("filter bug")

    rsync = Broken(tree)
    rsync.add_target(gw, tmp_path / "x")
    with pytest.raises(RuntimeError, match="filter bug"):
        rsync.send()
    _wait_idle(gw)


def _wait_idle(gw: Any, timeout: float = 30.0) -> None:
    """Wait until the remote runs no task (its rsync half saw the channel close)."""
    deadline = time.monotonic() + timeout
    while gw.remote_status().numexecuting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gw.remote_status().numexecuting == 0


class ChangingSourceFile(SourceFile):
    """A real source file that a real write changes after the first piece is read."""

    changes_left = 0

    def pieces(self, size: int = 1 << 20) -> Iterator[bytes]:
        for n, piece in enumerate(super().pieces(size)):
            if n == 0 and ChangingSourceFile.changes_left:
                ChangingSourceFile.changes_left -= 1
                with open(self.path, "r+b") as f:  # same size, new bytes, new mtime
                    f.write(b"X" * 100)
                os.utime(self.path, ns=(1, 2_000_000_000 + ChangingSourceFile.changes_left))
            yield piece


@pytest.mark.parametrize("changes", [1, 3])
def test_a_file_changing_while_read_is_sent_whole_or_reported(
    changes: int, tmp_path: Path, gw: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    old = b"o" * 100  # another size: no hash check before sending
    src = tmp_path / "src"
    src.mkdir()
    (src / "hot").write_bytes(b"n" * (3 << 20))  # large: streamed in pieces
    os.utime(src / "hot", ns=(1, 1_000_000_000))  # at rest: read once
    (src / "cold").write_text("c")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "hot").write_bytes(old)
    monkeypatch.setattr(_rsync, "SourceFile", ChangingSourceFile)
    monkeypatch.setattr(ChangingSourceFile, "changes_left", changes)
    rsync = RSync(src, verbose=False)
    rsync.add_target(gw, dest)
    rsync.send()
    assert (dest / "cold").read_text() == "c"
    if changes < _rsync.ATTEMPTS:  # the next read found it at rest: sent whole
        assert (dest / "hot").read_bytes() == (src / "hot").read_bytes()
        assert (dest / "hot").read_bytes().startswith(b"X" * 100)
        assert capsys.readouterr().err == ""
    else:  # it changed on every attempt: reported, the old copy stays
        assert (dest / "hot").read_bytes() == old
        err = capsys.readouterr().err
        assert "skipping 'hot'" in err
        assert "changed while being read, 3 times; not sent" in err
    assert sorted(os.listdir(dest)) == ["cold", "hot"]  # no temp file left behind


def test_undecodable_names_and_one_gateway_twice(
    tmp_path: Path, gw: Any, snapshot: Snapshot
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    raw = os.path.join(os.fsencode(str(src)), b"latin1-\xe9t\xe9")
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"bytes name")
    os.close(fd)
    seen: list[str] = []

    class Seeing(RSync):
        def filter(self, path: str) -> bool:
            seen.append(path)
            return True

    rsync = Seeing(src, verbose=False)
    rsync.add_target(gw, tmp_path / "one")
    rsync.add_target(gw, tmp_path / "two")  # the same gateway: its targets take turns
    rsync.send()
    assert snapshot(tmp_path / "one") == snapshot(src) == snapshot(tmp_path / "two")
    assert seen == [os.fsdecode(raw)]


class Interrupt(BaseException):
    """Not an Exception: like KeyboardInterrupt, it must leave send() at once."""


def test_an_interrupted_send_leaves_no_remote_waiting(tmp_path: Path, gw: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for n in range(24):
        (src / f"f{n:02}").write_bytes(os.urandom(1 << 20))
    (src / "ro").mkdir()
    os.chmod(src / "ro", 0o555)

    def interrupt(kind: str, number: int, channel: Any) -> None:
        if kind == "ack":
            raise Interrupt

    rsync = RSync(src, callback=interrupt, verbose=False)
    rsync.add_target(gw, tmp_path / "dest")
    with pytest.raises(Interrupt):
        rsync.send()
    _wait_idle(gw)
    names = os.listdir(tmp_path / "dest")
    assert not [name for name in names if "rsync-tmp" in name]
    assert 0 < len(names) < 25
    assert stat.S_IMODE(os.stat(tmp_path / "dest" / "ro").st_mode) == 0o555


@pytest.mark.parametrize("how", ["ssh", "socket", "via"])
def test_other_transports(
    how: str, request: pytest.FixtureRequest, tree: Path, tmp_path: Path, group: Any
) -> None:
    if how == "ssh":
        sshd = request.getfixturevalue("sshd")
        spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}"
    else:
        group.makegateway("popen//id=hop")
        spec = "socket//installvia=hop" if how == "socket" else "popen//via=hop"
    gw = group.makegateway(spec)
    rsync = Reporting(tree)
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    assert len(rsync.sent()) == 6
    assert sorted(os.listdir(tmp_path / "dest")) == sorted(os.listdir(tree))


def test_a_file_vanishing_before_it_is_read_is_reported(
    tree: Path, tmp_path: Path, gw: Any, capsys: Any
) -> None:
    def vanish(kind: str, number: int, channel: Any) -> None:
        if kind == "list":  # listed and asked for, gone before it is read
            (tree / "a.txt").unlink()

    rsync = RSync(tree, callback=vanish, verbose=False)
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    assert "skipping 'a.txt'" in capsys.readouterr().err
    assert not (tmp_path / "dest" / "a.txt").exists()
    copy = tmp_path / "dest" / "sub" / "b.bin"
    assert copy.read_bytes() == (tree / "sub" / "b.bin").read_bytes()


def test_a_failing_callback_fails_its_target(tree: Path, tmp_path: Path, gw: Any) -> None:
    def broken(kind: str, number: int, channel: Any) -> None:
        raise ValueError("progress bar bug")

    rsync = RSync(tree, callback=broken, verbose=False)
    rsync.add_target(gw, tmp_path / "dest")
    with pytest.raises(RSyncError, match="ValueError: progress bar bug") as info:
        rsync.send()
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.failures[0][2], ValueError)
    _wait_idle(gw)
    assert not [p for p in os.listdir(tmp_path / "dest") if "rsync-tmp" in p]


@pytest.fixture(params=[1, 3])
def small_parts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rsync, "LIST_PART", request.param)


@pytest.mark.usefixtures("small_parts")
def test_the_listing_streams_in_parts_during_the_walk(
    tmp_path: Path, group: Any, make_tree: MakeTree, snapshot: Snapshot
) -> None:
    files = {
        f"d{i}/s{j}/f{k}.txt": "x" * (i + j + k)
        for i in range(3)
        for j in range(3)
        for k in range(2)
    }
    src = make_tree(tmp_path / "src", files)
    dest = make_tree(tmp_path / "dest", {"d1/extra.txt": "gone", "d9/old/x": "gone too"})
    gw, other = group.makegateway("popen"), group.makegateway("popen")
    sent: list[str] = []

    class Counting(RSync):
        def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
            sent.append(modified_rel_path)

    rsync = Counting(src)
    rsync.add_target(gw, dest, delete=True)
    rsync.add_target(other, tmp_path / "second")
    rsync.add_target(gw, tmp_path / "third")  # the same gateway again: a second round
    rsync.send()
    for target in (dest, tmp_path / "second", tmp_path / "third"):
        assert snapshot(target) == snapshot(src)
    assert len(sent) == 3 * len(files)
    sent.clear()
    rsync.add_target(gw, dest, delete=True)
    rsync.add_target(other, tmp_path / "second")
    rsync.add_target(gw, tmp_path / "third")
    rsync.send()  # unchanged: nothing crosses
    assert sent == []


def test_a_walk_failing_midway_leaves_no_remote_waiting(
    tmp_path: Path, gw: Any, make_tree: MakeTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_rsync, "LIST_PART", 1)  # parts are out before the walk fails
    src = make_tree(tmp_path / "src", {f"d{i}/f.txt": "x" for i in range(6)})

    class BreaksLate(RSync):
        def filter(self, path: str) -> bool:
            if path.endswith(os.path.join("d4", "f.txt")):  # d0-d3 were streamed
                raise RuntimeError("filter bug late in the walk")
            return True

    rsync = BreaksLate(src, verbose=False)
    rsync.add_target(gw, tmp_path / "x")
    with pytest.raises(RuntimeError, match="late in the walk"):
        rsync.send()
    _wait_idle(gw)
    rsync = RSync(src, verbose=False)
    rsync.add_target(gw, tmp_path / "x")
    rsync.send()
    assert (tmp_path / "x" / "d5" / "f.txt").read_text() == "x"
