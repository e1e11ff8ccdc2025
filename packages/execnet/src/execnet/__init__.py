"""execnet: start Python interpreters on demand, run code there, talk to it over channels.

    >>> import execnet
    >>> gw = execnet.makegateway("popen")
    >>> channel = gw.remote_exec("channel.send(channel.receive() * 2)")
    >>> channel.send(21)
    >>> channel.receive()
    42
    >>> gw.exit()

The documented API, gathered from the packages that hold it: execnet_serial (dumps,
loads, dump, load and their errors), execnet_channel (Channel, RemoteError,
TimeoutError), execnet_transport (Gateway, XSpec, HostNotFound), execnet_group (Group,
MultiChannel, default_group, makegateway, set_execmodel) and execnet_rsync (RSync);
``execnet.aio`` is the same for asyncio code (imported on first use).
"""

from __future__ import annotations

from importlib import import_module as _import_module

from .__about__ import __version__

# `typing` costs a worker ~10 ms to import (benchmarks/README.md, "Start-up tricks we
# keep"); mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from execnet_channel import Channel, RemoteError, TimeoutError
    from execnet_group import Group, MultiChannel, default_group, makegateway, set_execmodel
    from execnet_rsync import RSync
    from execnet_serial import DataFormatError, DumpError, LoadError, dump, dumps, load, loads
    from execnet_transport import Gateway, HostNotFound, XSpec

    from . import aio
del TYPE_CHECKING

# Where each name lives. They are imported on first use: a pytest-xdist worker runs
# `import execnet` and then needs only the channel layer, so it should not pay for
# the transport, the group and rsync (~25 ms of CPU of every worker's start).
_HOMES: Dict[str, str] = {
    "Channel": "execnet_channel",
    "RemoteError": "execnet_channel",
    "TimeoutError": "execnet_channel",
    "Group": "execnet_group",
    "MultiChannel": "execnet_group",
    "default_group": "execnet_group",
    "makegateway": "execnet_group",
    "set_execmodel": "execnet_group",
    "RSync": "execnet_rsync",
    "DataFormatError": "execnet_serial",
    "DumpError": "execnet_serial",
    "LoadError": "execnet_serial",
    "dump": "execnet_serial",
    "dumps": "execnet_serial",
    "load": "execnet_serial",
    "loads": "execnet_serial",
    "Gateway": "execnet_transport",
    "HostNotFound": "execnet_transport",
    "XSpec": "execnet_transport",
}


def __getattr__(name: str) -> Any:
    if name == "aio":  # the asyncio API: a submodule, imported (with asyncio) on first use
        return _import_module("execnet.aio")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'execnet' has no attribute {name!r}")
    value = getattr(_import_module(home), name)
    globals()[name] = value  # later lookups are plain module attributes
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "makegateway",
    "set_execmodel",
    "default_group",
    "Group",
    "MultiChannel",
    "Gateway",
    "Channel",
    "XSpec",
    "HostNotFound",
    "RemoteError",
    "TimeoutError",
    "RSync",
    "dumps",
    "loads",
    "dump",
    "load",
    "DataFormatError",
    "DumpError",
    "LoadError",
    "aio",
    "__version__",
]
