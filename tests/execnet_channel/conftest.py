"""Two gateway endpoints in this process, connected over os.pipe pairs or a socketpair."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, List

import pytest

from execnet_channel import BaseGateway, FdIO, SocketIO, get_execmodel, serve


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
