"""Fixtures for the transport tests: a factory that makes gateways and ends them."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from execnet_transport import Gateway, XSpec, make_gateway

_ids = itertools.count()

MakeGateway = Callable[..., Gateway]


@pytest.fixture
def makegw() -> Iterator[MakeGateway]:
    """makegw("popen//python=...", via=gw, ...) -> a Gateway that is ended after the test."""
    made: List[Gateway] = []

    def make(spec: str, **kwargs: Any) -> Gateway:
        xspec = XSpec(spec)
        if xspec.id is None:
            xspec.id = f"t{next(_ids)}"
        gateway = make_gateway(xspec, **kwargs)
        made.append(gateway)
        return gateway

    yield make
    for gateway in reversed(made):
        gateway.exit()
    for gateway in reversed(made):
        gateway.join(10)
        if gateway.wait_child(10) is None:
            gateway.kill_child()
            gateway.wait_child(10)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file holding a fresh random secret (32 hex digits), for socket servers."""
    path = tmp_path / "secret"
    path.write_bytes(os.urandom(16).hex().encode() + b"\n")
    return path
