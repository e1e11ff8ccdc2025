"""The umbrella's public surface: exactly the documented names, from the packages that own them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import execnet
import execnet_channel
import execnet_group
import execnet_rsync
import execnet_serial
import execnet_transport

DOCUMENTED = {
    "Gateway", "Channel", "Group", "MultiChannel", "XSpec", "RSync", "HostNotFound",
    "RemoteError", "TimeoutError", "DataFormatError", "DumpError", "LoadError",
    "dumps", "loads", "dump", "load", "makegateway", "set_execmodel", "default_group",
    "aio", "__version__",
}  # fmt: skip

HOMES = {
    execnet_serial: ["dumps", "loads", "dump", "load", "DataFormatError", "DumpError", "LoadError"],
    execnet_channel: ["Channel", "RemoteError", "TimeoutError"],
    execnet_transport: ["Gateway", "XSpec", "HostNotFound"],
    execnet_group: ["Group", "MultiChannel", "default_group", "makegateway", "set_execmodel"],
    execnet_rsync: ["RSync"],
}


def test_all_is_exactly_the_documented_names() -> None:
    assert set(execnet.__all__) == DOCUMENTED
    assert len(execnet.__all__) == len(DOCUMENTED)


def test_no_other_public_names() -> None:
    public = {name for name in vars(execnet) if not name.startswith("_")} - {"annotations"}
    submodules = {
        "gateway_base",
        "gateway",
        "multi",
        "xspec",
        "rsync",
        "gateway_bootstrap",
        "script",
    }
    assert public - DOCUMENTED - submodules == set()


@pytest.mark.parametrize("module", list(HOMES), ids=lambda m: m.__name__)
def test_names_are_the_packages_own_objects(module: object) -> None:
    for name in HOMES[module]:  # type: ignore[index]
        assert getattr(execnet, name) is getattr(module, name), name


def test_version_satisfies_pytest_xdist_requirement() -> None:
    from importlib.metadata import version

    assert execnet.__version__ == "2.2.0"
    assert version("execnet") == execnet.__version__
    major, minor = (int(part) for part in execnet.__version__.split(".")[:2])
    assert (major, minor) >= (2, 1)


def test_error_hierarchy() -> None:
    assert issubclass(execnet.DumpError, execnet.DataFormatError)
    assert issubclass(execnet.LoadError, execnet.DataFormatError)
    assert issubclass(execnet.TimeoutError, IOError)
    assert execnet.Channel.TimeoutError is execnet.TimeoutError
    assert execnet.Channel.RemoteError is execnet.RemoteError


def test_default_group_is_the_groups_one() -> None:
    assert execnet.default_group is execnet_group.default_group
    assert isinstance(execnet.default_group, execnet.Group)


def test_typed() -> None:
    import pathlib

    assert (pathlib.Path(execnet.__file__).parent / "py.typed").exists()


def test_import_in_a_fresh_interpreter_is_quick_and_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import execnet; print(sorted(execnet.__all__))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""
    assert eval(result.stdout) == sorted(DOCUMENTED)


def test_dumps_probe_like_pytest_xdist() -> None:
    assert execnet.loads(execnet.dumps([1, "x", (2.5, None)])) == [1, "x", (2.5, None)]
    with pytest.raises(execnet.DumpError):
        execnet.dumps(object())


def test_makegateway_round_trip() -> None:
    gw = execnet.makegateway("popen")
    try:
        channel = gw.remote_exec("channel.send(channel.receive() * 2)")
        channel.send(21)
        assert channel.receive() == 42
        assert gw in execnet.default_group
    finally:
        gw.exit()
        execnet.default_group.terminate(5)


def test_reimport_is_stable() -> None:
    again = importlib.reload(execnet)
    assert again.Group is execnet_group.Group


def test_aio_is_the_asyncio_api_gathered_from_the_layers() -> None:
    import execnet_channel.aio
    import execnet_group.aio
    import execnet_rsync.aio

    aio = execnet.aio
    assert aio is importlib.import_module("execnet.aio")
    assert set(aio.__all__) == {
        "Group", "makegateway", "default_group", "AsyncGateway", "AsyncChannel", "RSync",
        "RSyncError", "TerminateReport", "RemoteError", "TimeoutError", "HostNotFound",
    }  # fmt: skip
    assert aio.Group is execnet_group.aio.Group
    assert aio.makegateway is execnet_group.aio.makegateway
    assert aio.AsyncChannel is execnet_channel.aio.AsyncChannel
    assert aio.AsyncGateway is execnet_channel.aio.AsyncGateway
    assert aio.RSync is execnet_rsync.aio.RSync
    assert aio.RemoteError is execnet.RemoteError
    assert aio.TimeoutError is execnet.TimeoutError
    assert aio.HostNotFound is execnet.HostNotFound
    assert aio.default_group.group is execnet.default_group


def test_import_execnet_does_not_import_asyncio() -> None:
    code = "import sys, execnet; execnet.makegateway; print('asyncio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
