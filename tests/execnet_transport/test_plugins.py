"""Transports as plug-ins (issue 15): the entry point group, the built-ins registered in
it, and a real plug-in distribution (tests/transport-plugin, installed into the test
environment by the workspace) found by its entry point and run end to end."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Callable

import pytest

from execnet_transport import (
    ENTRY_POINT_GROUP,
    BootstrapError,
    Gateway,
    HostNotFound,
    XSpec,
    known_transports,
    load_transport,
    make_gateway,
)
from execnet_transport._transports import BUILTIN_TRANSPORTS

MakeGateway = Callable[..., Gateway]


def _entry_points() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, []).append(point.value)
    return found


def test_builtins_are_declared_as_entry_points() -> None:
    declared = _entry_points()
    for key, value in BUILTIN_TRANSPORTS.items():
        assert value in declared[key], key  # the distribution's metadata says the same


def test_the_plugin_is_discovered() -> None:
    assert "envi" in _entry_points()  # installed by the workspace, not by this test
    assert known_transports()["envi"] == "execnet_test_transport:ENVI"
    assert load_transport("envi").keys == ("envi_path",)
    # a plug-in cannot replace a built-in key
    assert known_transports()["popen"] == BUILTIN_TRANSPORTS["popen"]


def test_plugin_gateway_end_to_end(makegw: MakeGateway) -> None:
    gw = makegw(f"envi//python={sys.executable}//env:SET_BY_SPEC=yes")
    assert gw.remoteaddress == "env -i PATH=/usr/bin:/bin"
    environ = gw.remote_exec("import os; channel.send(dict(os.environ))").receive(10)
    assert environ["PATH"] == "/usr/bin:/bin"
    assert environ["SET_BY_SPEC"] == "yes"
    assert "HOME" not in environ  # env -i: nothing of ours
    assert set(environ) <= {"PATH", "SET_BY_SPEC", "LC_CTYPE"}  # LC_CTYPE: C locale coercion
    assert "HOME" in os.environ


def test_plugin_keys_and_errors(makegw: MakeGateway) -> None:
    gw = makegw(f"envi//envi_path=/bin//python={sys.executable}")
    assert gw.remote_exec("import os; channel.send(os.environ['PATH'])").receive(10) == "/bin"
    with pytest.raises(ValueError, match="needs a value"):
        make_gateway(XSpec("envi//envi_path//id=x"))
    with pytest.raises(ValueError, match=r"envi_path= .* only works with envi"):
        make_gateway(XSpec("popen//envi_path=/bin//id=x"))
    with pytest.raises(ValueError, match=r"known here are: .*envi_path"):
        make_gateway(XSpec("popen//no_such=1//id=x"))
    with pytest.raises(ValueError, match=r"transports known here: .*envi"):
        make_gateway(XSpec("nothing=1//id=x"))
    with pytest.raises(BootstrapError, match="exit status 127"):
        makegw("envi//python=no-such-python")


# No container engine runs on these machines: the command lines are tested in
# test_commands.py; here, what a user sees when the engine cannot be reached or is absent.


def test_docker_without_a_daemon(makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if shutil.which("docker") is None:
        pytest.skip("no docker client here")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(BootstrapError, match="docker cannot reach its engine or cluster"):
        makegw("docker=no-such-container")


def test_kubectl_without_a_cluster(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    import shutil

    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl here")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path) + "/no-config")
    with pytest.raises(BootstrapError) as info:
        makegw("kubectl=no-such-pod//kubectl_namespace=ci")
    assert not isinstance(info.value, HostNotFound)
    assert "kubectl" in str(info.value)


def test_missing_engine_says_so(makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BootstrapError, match="cannot start 'podman': it is not installed here"):
        makegw("podman=web")
