"""Two gateway endpoints in this process, connected over os.pipe pairs or a socketpair."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from execnet_channel import BaseGateway, FdIO, SocketIO, get_execmodel, serve

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SRC_DIRS = [str(ROOT / "packages" / name / "src") for name in ("execnet-serial", "execnet-channel")]
SERVE_CHILD = str(HERE / "serve_child.py")


class Pair:
    """The opener's gateway and the serving end (running serve() in a task)."""

    def __init__(self, execmodel: str = "thread", kind: str = "pipe") -> None:
        model = get_execmodel(execmodel)
        self.model = model
        if kind == "pipe":
            r1, w1 = os.pipe()
            r2, w2 = os.pipe()
            self.fds = [r1, w1, r2, w2]
            local: Any = FdIO(r1, w2, model)
            remote: Any = FdIO(r2, w1, model)
        else:
            a, b = model.socket.socketpair()
            self.fds = []
            local, remote = SocketIO(a, model), SocketIO(b, model)
        self.local_io, self.remote_io = local, remote
        self.served = model.Event()
        self.serve_ident: Any = None

        def run() -> None:
            self.serve_ident = model.get_ident()
            try:
                serve(remote, "remote", exit_process=False)
            finally:
                self.served.set()

        model.start(run)
        self.gw = BaseGateway(local, "gw", opener=True)

    def close(self) -> None:
        self.gw.exit()
        assert self.served.wait(30), "serve() did not return after exit()"
        self.gw.join(30)
        assert not self.gw.hasreceiver()
        self.local_io.close_read()


@pytest.fixture
def make_pair() -> Iterator[Callable[..., Pair]]:
    pairs: List[Pair] = []

    def make(execmodel: str = "thread", kind: str = "pipe") -> Pair:
        pair = Pair(execmodel, kind)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.close()


class ChildGateway(BaseGateway):
    """The opener's end of a child process running serve_child.py."""

    def __init__(self, io: FdIO, id: str, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        super().__init__(io, id, opener=True)

    def _describe_eof(self) -> str:
        return f"child {self.proc.pid} of gateway {self.id!r} went away"


class Child:
    """A serve_child.py process and the gateway talking to it."""

    def __init__(
        self,
        python: str = sys.executable,
        execmodel: str = "thread",
        env: Optional[Dict[str, str]] = None,
        stderr_path: Optional[Path] = None,
    ) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = os.pathsep.join(SRC_DIRS)
        full_env.pop("EXECNET_TEST_GREENLET_MODEL", None)
        self.stderr = open(stderr_path, "wb") if stderr_path else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            [python, "-W", "ignore::DeprecationWarning", SERVE_CHILD, execmodel],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=full_env,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        io = FdIO(os.dup(self.proc.stdout.fileno()), os.dup(self.proc.stdin.fileno()))
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.io = io
        self.gw = ChildGateway(io, "child", self.proc)

    def close(self) -> None:
        self.gw.exit()
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.gw.join(30)
        self.io.close_read()
        if self.stderr:
            self.stderr.close()


@pytest.fixture
def make_child() -> Iterator[Callable[..., Child]]:
    children: List[Child] = []

    def make(*args: Any, **kwargs: Any) -> Child:
        child = Child(*args, **kwargs)
        children.append(child)
        return child

    yield make
    for child in children:
        child.close()
