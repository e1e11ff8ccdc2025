"""Two test plug-ins, one for each thing a transport may return.

``envi`` returns a Command: a python started through ``env -i PATH=...``.
``envi//envi_path=/usr/bin:/bin//python=...``: the interpreter starts with nothing in
its environment but PATH (and what ``env:NAME=value`` keys set through the bootstrap).

``sockpair`` returns an IO: it starts ``python -c <first stage>`` itself, with the
child's stdin and stdout on one end of a socket pair, and hands execnet the other end
(a ``SocketIO`` whose ``kill`` ends the child). ``sockpair//python=...``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Optional

from execnet_channel import ExecModel, SocketIO
from execnet_transport import Command, Connection, StartRequest, XSpec

__all__ = ["ENVI", "SOCKPAIR"]


class EnvTransport:
    keys = ("envi_path",)

    def check(self, spec: XSpec) -> None:
        if spec.envi_path is True:
            raise ValueError(f"envi_path in gateway spec {str(spec)!r} needs a value")

    def start(self, request: StartRequest) -> Command:
        path = request.spec.envi_path or "/usr/bin:/bin"
        return Command(
            ["env", "-i", f"PATH={path}", *request.python_args(sys.executable)],
            remoteaddress=f"env -i PATH={path}",
        )


ENVI = EnvTransport()


class ChildOverSocket(SocketIO):
    """The stream to a child whose stdin/stdout is the other end of the socket pair."""

    def __init__(
        self, sock: socket.socket, process: subprocess.Popen[bytes], model: ExecModel
    ) -> None:
        super().__init__(sock, model)
        self.process = process

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    # -- the Child the gateway asks for child_pid, wait_child and its post-mortem --

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def postmortem(self, wait: float = 1.0) -> str:
        status = self.wait(wait)
        return f"the sockpair child (pid {self.process.pid}) ended with status {status}"


class SocketPairTransport:
    keys = ()

    def check(self, spec: XSpec) -> None:
        if spec.sockpair is not True:
            raise ValueError(f"sockpair takes no value in gateway spec {str(spec)!r}")

    def start(self, request: StartRequest) -> Connection:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                request.python_args(sys.executable), stdin=theirs.fileno(), stdout=theirs.fileno()
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        io = ChildOverSocket(ours, process, request.execmodel)
        return Connection(io, remoteaddress=f"socket pair to pid {process.pid}", child=io)


SOCKPAIR = SocketPairTransport()
