"""Fixtures of the umbrella's tests: a socket server started as a command."""

from __future__ import annotations

import socket
import subprocess
from typing import Callable, Iterator, List

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def socket_server() -> Iterator[Callable[..., tuple[str, subprocess.Popen[str]]]]:
    """socket_server(*command_with_ADDRESS) -> (address, process), once it listens.

    ADDRESS in the command is replaced by 127.0.0.1:<a free port>; the server must print
    'listening on ADDRESS'. Every server started is stopped after the test.
    """
    started: List[subprocess.Popen[str]] = []

    def start(*command: str, **kwargs: object) -> tuple[str, subprocess.Popen[str]]:
        address = f"127.0.0.1:{free_port()}"
        args = [part.replace("ADDRESS", address) for part in command]
        server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]
        started.append(server)
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"listening on {address}"
        return address, server

    yield start
    for server in started:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
        if server.stderr is not None:
            server.stderr.close()
