"""``EXECNET_FORWARD_OUTPUT=1 pytest -n 2 -s``: the workers' prints reach the session's
stderr, with pytest-xdist 3.8.0 unchanged (issue 13). Also the workers' log records with
``EXECNET_FORWARD_LOGGING``, and nothing of it without the variables.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from interop.test_xdist import _prepared

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = {
    "test_prints.py": """
import logging, os, subprocess, sys

def test_print_a():
    print("worker", os.environ["PYTEST_XDIST_WORKER"], "prints from test_print_a")

def test_print_b():
    print("worker", os.environ["PYTEST_XDIST_WORKER"], "prints from test_print_b")
    os.write(2, b"fd 2 from test_print_b\\n")

def test_child_process():
    subprocess.run(["echo", "echo from a child of a worker"], check=True)

def test_logs():
    logging.getLogger("project.module").warning("a warning from a worker")
""",
    "pytest.ini": "[pytest]\n",
}


def _run(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    for name, text in PROJECT.items():
        (project / name).write_text(text)
    downstream = _prepared()
    env = downstream.fresh_packages(tmp_path / "packages")
    for name in ("EXECNET_FORWARD_OUTPUT", "EXECNET_FORWARD_LOGGING"):
        env.pop(name, None)
    env.update(variables)
    return subprocess.run(
        [str(downstream.venv_for("ours")), "-m", "pytest", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-n", "2", "-s", *args],
        cwd=project, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def test_workers_prints_reach_the_session(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        "--log-cli-level=WARNING",  # the session's live logging shows the workers' records
        EXECNET_FORWARD_OUTPUT="1",
        EXECNET_FORWARD_LOGGING="WARNING",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    err = result.stderr
    for test in ("a", "b"):
        # (with -s the worker's own progress (file names, dots) shares its stdout)
        line = rf"^\[(gw[01])\] .*worker \1 prints from test_print_{test}$"
        assert re.search(line, err, re.M), err
    assert re.search(r"^\[gw[01]:err\] fd 2 from test_print_b$", err, re.M), err
    assert re.search(r"^\[gw[01]\] .*echo from a child of a worker$", err, re.M), err
    live = re.search(r"WARNING +execnet\.remote\.gw[01]:.*a warning from a worker", result.stdout)
    assert live, result.stdout


def test_nothing_is_forwarded_without_the_variable(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "prints from" not in output
    assert "[gw0]" not in result.stderr.replace("[gw0] PASSED", "")
