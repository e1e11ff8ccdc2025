"""The module paths older code (pytest-xdist first) imports, as thin aliases."""

from __future__ import annotations

import sys

import pytest

import execnet
import execnet_channel
import execnet_group
import execnet_rsync
import execnet_serial
import execnet_transport

ALIASES = [
    ("execnet.gateway_base", "ExecModel", execnet_channel),
    ("execnet.gateway_base", "get_execmodel", execnet_channel),
    ("execnet.gateway_base", "Channel", execnet_channel),
    ("execnet.gateway_base", "RemoteError", execnet_channel),
    ("execnet.gateway_base", "TimeoutError", execnet_channel),
    ("execnet.gateway_base", "DumpError", execnet_serial),
    ("execnet.gateway_base", "LoadError", execnet_serial),
    ("execnet.gateway_base", "DataFormatError", execnet_serial),
    ("execnet.gateway_base", "dumps", execnet_serial),
    ("execnet.gateway_base", "loads", execnet_serial),
    ("execnet.gateway", "Gateway", execnet_transport),
    ("execnet.multi", "Group", execnet_group),
    ("execnet.multi", "MultiChannel", execnet_group),
    ("execnet.multi", "default_group", execnet_group),
    ("execnet.multi", "makegateway", execnet_group),
    ("execnet.xspec", "XSpec", execnet_transport),
    ("execnet.rsync", "RSync", execnet_rsync),
    ("execnet.gateway_bootstrap", "HostNotFound", execnet_transport),
]


@pytest.mark.parametrize(("path", "name", "home"), ALIASES, ids=[f"{p}.{n}" for p, n, _ in ALIASES])
def test_alias(path: str, name: str, home: object) -> None:
    module = __import__(path, fromlist=[name])
    assert getattr(module, name) is getattr(home, name)


def test_execmodel_as_pytest_xdist_uses_it() -> None:
    from execnet.gateway_base import ExecModel, get_execmodel

    model = get_execmodel("thread")
    assert isinstance(model, ExecModel)
    event = model.Event()
    lock = model.RLock()
    with lock:
        event.set()
    assert event.is_set()


def test_gateway_subclass_like_the_xdist_test_doubles() -> None:
    class MockGateway(execnet.Gateway):
        def __init__(self) -> None:  # never connects
            self.id = "mock"

    assert MockGateway().id == "mock"


def test_socketserver_script_is_runnable(socket_server) -> None:  # type: ignore[no-untyped-def]
    address, _ = socket_server(sys.executable, "-m", "execnet.script.socketserver", "ADDRESS")
    group = execnet.Group()
    try:
        gw = group.makegateway(f"socket={address}")
        assert gw.remote_exec("channel.send(6 * 7)").receive(30) == 42
    finally:
        group.terminate(5)
