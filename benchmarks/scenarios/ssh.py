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
import time
from pathlib import Path
from typing import Any, Iterator, Tuple

from _harness import Measure, Skip, gateway_cycle_times, run_cli, time_gateway_cycle

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
def _server() -> Iterator[Tuple[str, Path, int]]:
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
        yield helpers.ALIAS, ssh_config, port
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)


def _python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def ready_exec_exit() -> Measure:
    with _server() as (alias, ssh_config, _):
        spec = f"ssh={alias}//ssh_config={ssh_config}//python={_python()}"
        time_gateway_cycle(spec)  # warm up
        return Measure(time_gateway_cycle(spec), "gateway")


def _group_of_8(extra: str) -> Measure:
    import execnet

    with _server() as (alias, ssh_config, _):
        spec = f"ssh={alias}//ssh_config={ssh_config}//python={_python()}{extra}"
        time_gateway_cycle(spec)  # warm up (sshd, the client's files)
        start = time.perf_counter()
        group = execnet.Group([spec] * 8)
        made = time.perf_counter()
        answers = group.remote_exec("import os; channel.send(os.getpid())").receive_each()
        assert len(set(answers)) == 8
        group.terminate(10)
        end = time.perf_counter()
        return Measure(end - start, "group", 1, {"make_s": made - start})


def group_8() -> Measure:
    """8 gateways to one host with one Group: made, one exec each, terminated (ours
    shares one ssh connection; execnet 2.1.2 ignores the key and opens 8)."""
    return _group_of_8("")


def group_8_unshared() -> Measure:
    """The same with ssh_share=no: 8 ssh connections on both sides."""
    return _group_of_8("//ssh_share=no")


def _first_and_second(which: int) -> Measure:
    import execnet

    with _server() as (alias, ssh_config, _):
        spec = f"ssh={alias}//ssh_config={ssh_config}//python={_python()}"
        time_gateway_cycle(spec)  # warm up
        start = time.perf_counter()
        first = execnet.makegateway(spec)
        first.remote_exec("channel.send(1)").receive()
        first_s = time.perf_counter() - start
        second_s = gateway_cycle_times(spec)[0]  # while the first is open
        first.exit()
        first.join()
        return Measure(first_s if which == 1 else second_s, "gateway")


def first_gateway() -> Measure:
    """The first gateway to a host: ready + one exec answered (it opens the connection)."""
    return _first_and_second(1)


def second_gateway() -> Measure:
    """A second gateway to the host while the first is open: ready + one exec answered."""
    return _first_and_second(2)


def jump() -> Measure:
    """A gateway through a jump host (ssh -J: the same sshd under another name)."""
    with _server() as (_, ssh_config, port):
        spec = (
            f"ssh=-J localhost:{port} -p {port} 127.0.0.1//ssh_config={ssh_config}"
            f"//python={_python()}"
        )
        time_gateway_cycle(spec)  # warm up
        return Measure(time_gateway_cycle(spec), "gateway")


CASES = {
    "ready_exec_exit": ready_exec_exit,
    "group_8": group_8,
    "group_8_unshared": group_8_unshared,
    "first_gateway": first_gateway,
    "second_gateway": second_gateway,
    "jump": jump,
}

if __name__ == "__main__":
    run_cli(CASES)
