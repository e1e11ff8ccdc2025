"""A pytest-xdist session: `pytest -n 2` (and `-n 8`) over 400 trivial tests, wall time.

The test file is generated in a fresh temporary directory (with its own empty pytest.ini,
so no outer configuration applies) and pytest runs in a child process of this
environment's interpreter, so the figure is what a user waits for: start two workers
through execnet, ship the collection, run, report, terminate. Lower is better.

The `_fork` cases run the same session with EXECNET_FORK=1 in its environment: ours
then forks every worker from a fork server (popen//fork); execnet 2.1.2 knows no such
variable, so its figure there is its plain one.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Measure, Skip, quick, run_cli


def _write_tests(folder: Path, count: int) -> None:
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    lines = [f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n" for i in range(count)]
    (folder / "test_trivial.py").write_text("\n".join(lines))


def session(workers: int = 2, fork: bool = False) -> Measure:
    if importlib.util.find_spec("xdist") is None:
        raise Skip("pytest-xdist is not installed here")
    count = 100 if quick() else 400
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EXECNET_"))}
    if fork:
        env["EXECNET_FORK"] = "1"
    with tempfile.TemporaryDirectory(prefix="bench-xdist-") as tmp:
        folder = Path(tmp)
        _write_tests(folder, count)
        command = [sys.executable, "-m", "pytest", "-n", str(workers), "-q", str(folder)]
        start = time.perf_counter()
        done = subprocess.run(
            command, check=False, cwd=tmp, env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
    if done.returncode != 0 or f"{count} passed" not in done.stdout:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"pytest -n {workers} failed (exit {done.returncode}):\n{tail}")
    return Measure(elapsed, "session")


CASES = {
    "n2_400_tests": session,
    "n8_400_tests": lambda: session(8),
    "n8_400_tests_fork": lambda: session(8, fork=True),
}

if __name__ == "__main__":
    run_cli(CASES)
