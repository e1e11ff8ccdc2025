"""Our socket server and client against execnet 2.1.2's, both directions (black box).

execnet 2.1.2 runs only in its own virtual environment (parts.oracle_python()).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Iterator, List, Tuple

import parts
import pytest
from sshd import _free_port

from execnet_transport import XSpec, make_gateway


def _start(args: List[str], ready: str) -> Tuple[subprocess.Popen[str], str]:
    """Start a server; return it and the line it announced itself with."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server announces itself
    if ready not in line:
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"server did not start: {line!r} {err}")
    return process, line


def _stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()


@pytest.fixture
def oracle() -> str:
    return parts.oracle_python()


@pytest.fixture
def original_server(oracle: str) -> Iterator[str]:
    port = _free_port()
    process, _ = _start(
        [oracle, "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"], "Accept loop"
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


def test_our_client_on_the_original_server(original_server: str, oracle: str) -> None:
    for number in range(2):  # the original serves one client after another
        gw = make_gateway(XSpec(f"socket={original_server}//id=orig{number}"))
        try:
            info = gw._rinfo()
            assert os.path.realpath(info.executable) == os.path.realpath(oracle)
            ch = gw.remote_exec("channel.send(channel.receive() + 1)")
            ch.send(41)
            assert ch.receive(10) == 42
        finally:
            gw.exit()
            gw.join(10)


def test_our_client_with_execmodel_on_the_original_server(original_server: str) -> None:
    gw = make_gateway(XSpec(f"socket={original_server}//execmodel=main_thread_only//id=o"))
    try:
        assert gw.remote_status().execmodel == "main_thread_only"
    finally:
        gw.exit()
        gw.join(10)


_ORIGINAL_CLIENT = textwrap.dedent(
    """
    import sys, execnet
    gw = execnet.makegateway("socket=" + sys.argv[1])
    ch = gw.remote_exec("import os, sys; channel.send((sys.executable, os.getpid()))")
    executable, pid = ch.receive(30)
    ch = gw.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(21)
    print(executable, pid, ch.receive(30), execnet.__version__)
    gw.exit()
    """
)


def test_original_client_on_our_server(oracle: str) -> None:
    process, line = _start(
        [sys.executable, "-m", "execnet_transport.socketserver", "127.0.0.1:0"], "listening on"
    )
    address = line.split()[-1]
    try:
        for _ in range(2):  # two clients, one after the other
            out = subprocess.run(
                [oracle, "-c", _ORIGINAL_CLIENT, address],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert out.returncode == 0, out.stderr
            executable, pid, doubled, version = out.stdout.split()
            assert os.path.realpath(executable) == os.path.realpath(sys.executable)
            assert int(pid) != process.pid  # served in a child process
            assert doubled == "42"
            assert version == "2.1.2"
    finally:
        _stop(process)
