"""The one gateway behaviour suite (tests/gateway_contract.py) over every transport."""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import Any, Iterator

import parts
import pytest
from gateway_contract import GatewayContract
from socketservers import PKI, Server, start_server
from sshd import SshServer

from execnet_transport import Gateway, XSpec, make_gateway

_ids = itertools.count()


def _open(spec: str, **kwargs: Any) -> Iterator[Gateway]:
    xspec = XSpec(spec)
    xspec.id = f"c{next(_ids)}"
    gateway = make_gateway(xspec, **kwargs)
    yield gateway
    gateway.exit()
    gateway.join(10)
    if gateway.wait_child(10) is None:
        gateway.kill_child()


@pytest.fixture(scope="module")
def socket_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "execnet_transport.socketserver", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until bound
    try:
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


class TestPopen(GatewayContract):
    @pytest.fixture(params=["thread", "main_thread_only"])
    def gw(self, request: pytest.FixtureRequest) -> Iterator[Gateway]:
        yield from _open(f"popen//execmodel={request.param}")


class TestPopenOtherInterpreter(GatewayContract):
    @pytest.fixture
    def gw(self) -> Iterator[Gateway]:
        yield from _open(f"popen//python={parts.other_interpreter()}")


class TestPopenFork(GatewayContract):
    @pytest.fixture(params=["thread", "main_thread_only"])
    def gw(self, request: pytest.FixtureRequest) -> Iterator[Gateway]:
        yield from _open(f"popen//fork//execmodel={request.param}")


class TestPopenForkOtherInterpreter(GatewayContract):
    @pytest.fixture
    def gw(self) -> Iterator[Gateway]:
        yield from _open(f"popen//fork//python={parts.other_interpreter()}")


class TestSocket(GatewayContract):
    @pytest.fixture
    def gw(self, socket_server: str) -> Iterator[Gateway]:
        yield from _open(f"socket={socket_server}")


@pytest.fixture(scope="module")
def tls_server(pki: PKI) -> Iterator[Server]:
    """A TLS server that wants client certificates (mutual TLS)."""
    server = start_server(
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca),
    )
    yield server
    server.close()


class TestTlsSocket(GatewayContract):
    @pytest.fixture
    def gw(self, tls_server: Server, pki: PKI) -> Iterator[Gateway]:
        keys = f"tls_ca={pki.ca}//tls_cert={pki.client_cert}//tls_key={pki.client_key}"
        yield from _open(f"socket={tls_server.address}//{keys}")


class TestSsh(GatewayContract):
    @pytest.fixture
    def gw(self, sshd: SshServer) -> Iterator[Gateway]:
        yield from _open(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}")


class TestVia(GatewayContract):
    @pytest.fixture
    def gw(self) -> Iterator[Gateway]:
        for hop in _open("popen"):
            yield from _open("popen", via=hop)
