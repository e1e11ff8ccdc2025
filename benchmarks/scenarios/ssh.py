"""An ssh gateway to 127.0.0.1: ready + one exec + exit, against a throwaway sshd.

The sshd is the test suite's (tests/sshd.py: its own config, host key and client key in
a temporary directory, started before the clock). The remote interpreter is this
environment's base CPython, reached as `ssh=<alias>//ssh_config=<file>//python=<path>`,
so the bootstrap ships the travelling code over ssh as it would to another host. One
untimed gateway first warms up this side. Lower is better.

Every session gets HOME set to an empty directory (sshd's `SetEnv`), as on a host
whose account has no shell rc of its own: Debian's bash reads ~/.bashrc for every
command run over ssh, and this machine's root ~/.bashrc runs `pyenv init` (about a
hundred processes, 70 ms idle and several times that under load) in every session, on
both sides alike. `EXECNET_BENCH_SSH_HOME=account` keeps the account's own home.

The jump_hosts case needs tests/sshd.py's `running_hosts` (network namespaces: root).
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
    needed = ("SSHD", "ALIAS", "_free_port", "_write_configs", "_wait_listening", "running_hosts")
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
    sshd_config, ssh_config, _ = helpers._write_configs(directory, port, _home(directory))
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


def _home(directory: Path) -> Any:
    """An empty HOME for the sessions (None: the account's own); see the docstring."""
    if os.environ.get("EXECNET_BENCH_SSH_HOME") == "account":
        return None
    home = directory / "home"
    home.mkdir(exist_ok=True)
    return home


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
        popen = f"popen//python={_python()}"
        gateway_cycle_times(popen)  # warm up
        start = time.perf_counter()
        first = execnet.makegateway(spec)
        first.remote_exec("channel.send(1)").receive()
        first_s = time.perf_counter() - start
        second_s = gateway_cycle_times(spec)[0]  # while the first is open
        popen_s = gateway_cycle_times(popen)[0]  # the same, for a popen gateway
        first.exit()
        first.join()
        extra = {"popen_s": popen_s, "second_to_popen": second_s / popen_s}
        return Measure(first_s if which == 1 else second_s, "gateway", 1, extra)


def first_gateway() -> Measure:
    """The first gateway to a host: ready + one exec answered (it opens the connection)."""
    return _first_and_second(1)


def second_gateway() -> Measure:
    """A second gateway to the host while the first is open: ready + one exec answered."""
    return _first_and_second(2)


def popen_gateway() -> Measure:
    """For scale: a popen gateway to the same interpreter, ready + one exec answered (as
    second_gateway measures; with --interleave they take turns)."""
    spec = f"popen//python={_python()}"
    gateway_cycle_times(spec)  # warm up
    return Measure(gateway_cycle_times(spec)[0], "gateway")


def jump_hosts() -> Measure:
    """A gateway through a real jump host: tests/sshd.py's hosts, `ssh=-J a b`, where b
    is reachable only through a (ready + one exec + exit)."""
    helpers = _sshd_helpers()
    directory = Path(tempfile.mkdtemp(prefix="bench-home-"))
    try:
        home = _home(directory)
        try:
            hosts_context = helpers.running_hosts(home)
            hosts = hosts_context.__enter__()
        except helpers.PartMissing as missing:
            raise Skip(str(missing)) from None
        try:
            # -J in ssh=, as both sides understand it (ours' ssh_jump=a is the same -J a)
            spec = f"ssh=-J a b//ssh_config={hosts.ssh_config}//python={_python()}"
            time_gateway_cycle(spec)  # warm up
            return Measure(time_gateway_cycle(spec), "gateway")
        finally:
            hosts_context.__exit__(None, None, None)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


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
    "popen_gateway": popen_gateway,
    "jump": jump,
    "jump_hosts": jump_hosts,
}

if __name__ == "__main__":
    run_cli(CASES)
