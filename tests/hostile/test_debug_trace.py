"""EXECNET_DEBUG=1's trace file against another local user (issue 11, point 8).

The file is ``execnet-debug-PID`` in the temp directory: a name anyone can predict, in a
directory anyone can write to. Whatever waits under that name (a symlink, a hard link,
another user's file, a FIFO) must be left alone, and the trace must still be written,
readable by this user only. Each case runs a real process with EXECNET_DEBUG=1 and
TMPDIR pointing at a directory of the test; the process plants the trap under its own
pid before its first trace line (as an attacker would for a pid they expect).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import parts
import pytest

TRACING = r"""
import os, sys, tempfile
plant = sys.argv[1]
directory = tempfile.gettempdir()
path = os.path.join(directory, "execnet-debug-%d" % os.getpid())
victim = os.path.join(directory, "victim")
if plant == "symlink":
    os.symlink(victim, path)
elif plant == "dangling symlink":
    os.symlink(os.path.join(directory, "made-through-the-link"), path)
elif plant == "hard link":
    os.link(victim, path)
elif plant == "another user's file":
    with open(path, "w") as f:
        f.write("theirs\n")
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o666)
elif plant == "fifo":
    os.mkfifo(path)
elif plant == "own stale file":
    with open(path, "w") as f:
        f.write("an earlier process with this pid\n")
    os.chmod(path, 0o644)
os.umask(0)  # the file's mode must not depend on the umask
from execnet_channel import trace
trace("the", "secret", "line")
if plant == "fork":
    pid = os.fork()
    if pid == 0:
        trace("from the child")
        os._exit(0)
    os.waitpid(pid, 0)
    print(pid)
print(os.getpid())
"""


def run_tracing(tmp_path: Path, plant: str) -> Tuple[List[int], str]:
    result = subprocess.run(
        [sys.executable, "-c", TRACING, plant],
        env=dict(os.environ, EXECNET_DEBUG="1", TMPDIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [int(line) for line in result.stdout.split()], result.stderr


def traces(tmp_path: Path, pid: int) -> Dict[str, Path]:
    """The files whose name starts with this pid's trace name."""
    return {p.name: p for p in tmp_path.iterdir() if p.name.startswith(f"execnet-debug-{pid}")}


def assert_private_trace(path: Path) -> None:
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
    assert info.st_uid == os.geteuid()
    assert "the secret line" in path.read_text()


def test_a_new_trace_file_is_private(tmp_path: Path) -> None:
    [pid], stderr = run_tracing(tmp_path, "nothing")
    assert list(traces(tmp_path, pid)) == [f"execnet-debug-{pid}"]
    assert_private_trace(tmp_path / f"execnet-debug-{pid}")
    assert stderr == ""


@pytest.mark.parametrize("plant", ["symlink", "dangling symlink", "hard link", "fifo"])
def test_a_planted_name_is_not_used(tmp_path: Path, plant: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    [pid], stderr = run_tracing(tmp_path, plant)
    planted = tmp_path / f"execnet-debug-{pid}"
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "made-through-the-link").exists()
    if plant.endswith("symlink"):
        assert planted.is_symlink()
    # the trace went to a fresh private file, and stderr says where and why
    [fallback] = [p for name, p in traces(tmp_path, pid).items() if name != planted.name]
    assert_private_trace(fallback)
    assert f"{planted} exists and is not this user's own file" in stderr
    assert str(fallback) in stderr


def test_another_users_file_is_not_used(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        parts.missing("root, to make a file owned by another user")
    [pid], stderr = run_tracing(tmp_path, "another user's file")
    theirs = tmp_path / f"execnet-debug-{pid}"
    assert theirs.read_text() == "theirs\n"
    assert theirs.stat().st_uid == 65534
    [fallback] = [p for name, p in traces(tmp_path, pid).items() if name != theirs.name]
    assert_private_trace(fallback)
    assert "exists and is not this user's own file" in stderr


def test_an_own_stale_file_is_appended_to_and_made_private(tmp_path: Path) -> None:
    [pid], stderr = run_tracing(tmp_path, "own stale file")
    path = tmp_path / f"execnet-debug-{pid}"
    assert list(traces(tmp_path, pid)) == [path.name]
    assert path.read_text().startswith("an earlier process with this pid\n")
    assert_private_trace(path)
    assert stderr == ""


def test_a_forked_child_traces_to_its_own_file(tmp_path: Path) -> None:
    [child, parent], _ = run_tracing(tmp_path, "fork")
    assert "from the child" not in (tmp_path / f"execnet-debug-{parent}").read_text()
    child_trace = tmp_path / f"execnet-debug-{child}"
    assert f"[{child}] from the child" in child_trace.read_text()
    assert stat.S_IMODE(child_trace.stat().st_mode) == 0o600
