"""execnet: start Python interpreters on demand, run code there, talk to it over channels.

    import execnet

    gw = execnet.makegateway("popen")
    channel = gw.remote_exec("channel.send(channel.receive() * 2)")
    channel.send(21)
    assert channel.receive() == 42

The documented API, gathered from the packages that hold it: execnet_serial (dumps,
loads, dump, load and their errors), execnet_channel (Channel, RemoteError,
TimeoutError), execnet_transport (Gateway, XSpec, HostNotFound), execnet_group (Group,
MultiChannel, default_group, makegateway, set_execmodel) and execnet_rsync (RSync).
"""

from __future__ import annotations

from execnet_channel import Channel, RemoteError, TimeoutError
from execnet_group import Group, MultiChannel, default_group, makegateway, set_execmodel
from execnet_rsync import RSync
from execnet_serial import DataFormatError, DumpError, LoadError, dump, dumps, load, loads
from execnet_transport import Gateway, HostNotFound, XSpec

from .__about__ import __version__

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
    "__version__",
]
