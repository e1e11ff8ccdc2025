"""Transports as plug-ins (issue 15): the entry point group, the built-ins registered in
it, and a real plug-in distribution (tests/transport-plugin, installed into the test
environment by the workspace) found by its entry point and run end to end."""

from __future__ import annotations

import os
import re
import sys
import time
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


# -- sockpair: a plug-in that returns an IO (a socket pair to a child it started itself) --


def process_ended(pid: int, timeout: float = 30.0) -> bool:
    """True once `pid` is gone or a zombie (within `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as file:
                if file.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def _plugin_metadata_is_current(request: pytest.FixtureRequest) -> None:
    """An environment made before an entry point was added to tests/transport-plugin
    keeps the old metadata (hatch does not re-install a workspace member whose
    pyproject changed): say how to refresh it instead of failing obscurely."""
    if "io_plugin" in request.node.name and "sockpair" not in _entry_points():
        pytest.fail(
            "the test plug-in's installed metadata predates its sockpair entry point: "
            "refresh the environment (hatch env prune, or uv pip install --python "
            "<env>/bin/python -e tests/transport-plugin --no-deps)"
        )


def test_an_io_plugin_is_discovered() -> None:
    assert known_transports()["sockpair"] == "execnet_test_transport:SOCKPAIR"
    assert "sockpair" in _entry_points()  # installed by the workspace, not by this test


def test_an_io_plugin_end_to_end(makegw: MakeGateway) -> None:
    gw = makegw("sockpair//env:SET_BY_SPEC=yes")
    assert type(gw._io).__name__ == "ChildOverSocket"
    info = gw._rinfo()
    assert gw.remoteaddress == f"socket pair to pid {info.pid}"
    assert gw.child_pid == info.pid  # the plug-in's child is the interpreter itself
    ch = gw.remote_exec(
        "import os, stat; channel.send((os.environ['SET_BY_SPEC'], "
        "stat.S_ISSOCK(os.fstat(channel.gateway._io.read_fd).st_mode)))"
    )
    assert ch.receive(10) == ("yes", True)  # the bootstrap went over the socket pair
    echo = gw.remote_exec("for item in channel: channel.send(item)")
    data = os.urandom(3 << 20)
    echo.send(data)
    assert echo.receive(60) == data
    echo.close()
    gw.exit()
    gw.join(30)
    assert gw.wait_child(30) == 0


def test_an_io_plugin_cut_kills_its_child(makegw: MakeGateway) -> None:
    gw = makegw("sockpair")
    pid = gw._rinfo().pid
    gw.cut_connection()  # kill() of the IO: the plug-in's child
    gw.join(30)
    assert gw.wait_child(30) == -9
    assert process_ended(pid)


def test_an_io_plugin_whose_child_ends_at_once(makegw: MakeGateway) -> None:
    # sh prints and exits instead of running the first stage: noise, then the end
    with pytest.raises(BootstrapError, match="ended the stream before the bootstrap") as info:
        makegw("sockpair//python=sh -c 'echo not a python; exit 3' sh")
    assert "not a python" in str(info.value)
    assert str(info.value).startswith("gateway ")


def test_an_io_plugin_that_never_answers_is_cut(
    makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import execnet_transport._connect as connect

    monkeypatch.setattr(connect, "BOOTSTRAP_TIMEOUT", 1.0)
    with pytest.raises(
        BootstrapError, match=r"no answer to the bootstrap from .* within 1 s"
    ) as info:
        makegw("sockpair//python=sh -c 'exec sleep 600' sh")
    pid = int(re.search(r"socket pair to pid (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    assert process_ended(pid)  # the cut killed it (the IO's kill)


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
