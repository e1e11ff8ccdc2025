"""Why a worker died reaches pytest-xdist users, with pytest-xdist 3.8.0 unchanged.

pytest-xdist reads ``channel._getremoteerror()`` when a worker's channel ends and prints
``[gwN] node down: <error>``, replacing an EOFError (or nothing) by the fixed text "Not
properly terminated". Ours returns a NotProperlyTerminated whose text starts with that
phrase and goes on with the post-mortem. These tests run real pytest-xdist sessions in
subprocesses on a small project whose tests kill their own worker, and compare the
session's outcome with execnet 2.1.2's.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from interop.test_xdist import _prepared

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = {
    "test_a_passing.py": """
def test_one(): pass
def test_two(): pass
""",
    "test_b_exit.py": """
import os
def test_exits_with_3():
    os._exit(3)
""",
    "test_c_passing.py": """
def test_three(): pass
def test_four(): pass
""",
    "test_d_kill.py": """
import os, signal
def test_sigkills_its_worker():
    os.kill(os.getpid(), signal.SIGKILL)
""",
}
TAG_VARIABLE = "EXECNET_POSTMORTEM_TEST_TAG"


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name, text in PROJECT.items():
        (project / name).write_text(text)
    (project / "pytest.ini").write_text("[pytest]\n")
    return project


def _processes_tagged(tag: str) -> List[int]:
    """Pids of the live processes whose environment holds our tag (started by the run)."""
    found = []
    needle = f"{TAG_VARIABLE}={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in environ.split(b"\0") and "\nState:\tZ" not in status:
            found.append(int(entry))
    return found


def _run(kind: str, project: Path, *args: str) -> Tuple[subprocess.CompletedProcess[str], str]:
    downstream = _prepared()
    python = downstream.venv_for(kind)
    if kind == "ours":
        env = downstream.fresh_packages(project.parent / "packages")
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EXECNET_"))}
    tag = uuid.uuid4().hex
    env[TAG_VARIABLE] = tag
    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return result, tag


def _counts(output: str) -> Dict[str, int]:
    """{'passed': 4, 'failed': 2, ...} from the session's last summary line."""
    lines = [line for line in output.splitlines() if line.startswith("=")]
    assert lines, output[-3000:]
    return {word: int(number) for number, word in re.findall(r"(\d+) (\w+)", lines[-1])}


def _assert_nothing_left(tag: str) -> None:
    # The session has ended; its workers may still be leaving the process table.
    deadline = time.monotonic() + 30
    while _processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_tagged(tag) == [], "processes of the session outlived it"


def test_node_down_tells_why_the_worker_died(tmp_path: Path) -> None:
    result, tag = _run("ours", _project(tmp_path), "-n", "2")
    output = result.stdout + result.stderr
    assert re.search(r"node down: Not properly terminated: .*exit status 3 \(pid \d+\)", output), (
        output[-4000:]
    )
    assert re.search(
        r"node down: Not properly terminated: .*killed by signal SIGKILL \(pid \d+\)", output
    ), output[-4000:]
    assert "replacing crashed worker" in output, output[-4000:]
    assert _counts(result.stdout) == {"failed": 2, "passed": 4}, result.stdout[-3000:]
    assert "crashed while running 'test_b_exit.py::test_exits_with_3'" in output
    assert "crashed while running 'test_d_kill.py::test_sigkills_its_worker'" in output
    assert result.returncode == 1
    _assert_nothing_left(tag)


def test_the_last_stderr_lines_of_the_worker_are_shown(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_dies.py").write_text(
        "import os, sys\n"
        "def test_dies():\n"
        "    os.write(2, b'worker says goodbye\\n')\n"
        "    os._exit(7)\n"
    )
    # -s: pytest's capture would otherwise take the worker's fd 2 during the test
    result, tag = _run("ours", project, "-n", "1", "-s", "--max-worker-restart=0")
    output = result.stdout + result.stderr
    down = output[output.index("node down: Not properly terminated") :]
    assert "exit status 7" in down.splitlines()[0], down[:2000]
    assert "worker says goodbye" in down, down[:2000]
    _assert_nothing_left(tag)


@pytest.mark.parametrize(
    "options",
    [
        ["-n", "1"],
        ["-n", "1", "-x"],
        ["-n", "1", "--maxfail=1"],
        ["-n", "1", "--max-worker-restart=0"],
        ["-n", "1", "--max-worker-restart=1"],
    ],
    ids=lambda options: " ".join(options),
)
def test_crash_handling_matches_execnet_2_1_2(tmp_path: Path, options: List[str]) -> None:
    project = _project(tmp_path)
    ours, our_tag = _run("ours", project, *options)
    original, original_tag = _run("oracle", project, *options)
    assert _counts(ours.stdout) == _counts(original.stdout), (
        ours.stdout[-3000:],
        original.stdout[-3000:],
    )
    assert ours.returncode == original.returncode
    assert ("replacing crashed worker" in ours.stdout) == (
        "replacing crashed worker" in original.stdout
    )
    assert ("maximum crashed workers reached" in ours.stdout) == (
        "maximum crashed workers reached" in original.stdout
    )
    _assert_nothing_left(our_tag)
    _assert_nothing_left(original_tag)
