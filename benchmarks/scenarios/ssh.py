"""An ssh gateway to 127.0.0.1: ready + one exec + exit, against a throwaway sshd.

The sshd is the test suite's (tests/sshd.py: its own config, host key and client key in
a temporary directory, started before the clock). The remote interpreter is this
environment's base CPython, reached as `ssh=<alias>//ssh_config=<file>//python=<path>`,
so the bootstrap ships the travelling code over ssh as it would to another host. One
untimed gateway first warms up this side. Lower is better.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Tuple

from _harness import Measure, Skip, run_cli, time_gateway_cycle

TESTS = Path(__file__).resolve().parents[2] / "tests"


def _sshd_helpers() -> Any:
    if not (TESTS / "sshd.py").exists():
        raise Skip("tests/sshd.py is absent")
    sys.path.insert(0, str(TESTS))
    try:
        # the test suite's helpers (they import pytest, present in both venvs)
        sshd = importlib.import_module("sshd")
    except ImportError as exc:
        raise Skip(f"tests/sshd.py cannot be imported here: {exc}") from None
    finally:
        sys.path.remove(str(TESTS))
    needed = ("SSHD", "ALIAS", "_free_port", "_write_configs", "_wait_listening")
    absent = [name for name in needed if not hasattr(sshd, name)]
    if absent:
        raise Skip(f"tests/sshd.py no longer offers {', '.join(absent)}")
    if not os.path.exists(sshd.SSHD) or shutil.which("ssh") is None:
        raise Skip("OpenSSH (sshd and ssh) is not installed")
    return sshd


@contextlib.contextmanager
def _server() -> Iterator[Tuple[str, Path]]:
    helpers = _sshd_helpers()
    os.makedirs("/run/sshd", exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="bench-sshd-"))
    port = helpers._free_port()
    sshd_config, ssh_config, _ = helpers._write_configs(directory, port)
    process = subprocess.Popen(
        [helpers.SSHD, "-D", "-e", "-f", str(sshd_config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        helpers._wait_listening("127.0.0.1", port, process, timeout=30)
        yield helpers.ALIAS, ssh_config
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)


def ready_exec_exit() -> Measure:
    python = getattr(sys, "_base_executable", None) or sys.executable
    with _server() as (alias, ssh_config):
        spec = f"ssh={alias}//ssh_config={ssh_config}//python={python}"
        time_gateway_cycle(spec)  # warm up
        return Measure(time_gateway_cycle(spec), "gateway")


CASES = {"ready_exec_exit": ready_exec_exit}

if __name__ == "__main__":
    run_cli(CASES)
