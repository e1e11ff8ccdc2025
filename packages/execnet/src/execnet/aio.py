"""execnet for asyncio code: gateways, channels, groups and rsync, awaited.

    import execnet.aio

    async def main():
        async with execnet.aio.Group() as group:           # terminates on exit
            gw = await group.makegateway("popen")
            ch = gw.remote_exec("channel.send(channel.receive() * 2)")
            await ch.send(21)
            assert await ch.receive(timeout=5) == 42

Gathered from the layers that hold each part: execnet_channel.aio (AsyncChannel,
AsyncGateway), execnet_group.aio (Group, makegateway, default_group) and
execnet_rsync.aio (RSync). The errors are the sync API's own classes.
"""

from __future__ import annotations

from execnet_channel import RemoteError, TimeoutError
from execnet_channel.aio import AsyncChannel, AsyncGateway
from execnet_group import TerminateReport
from execnet_group.aio import Group, default_group, makegateway
from execnet_rsync import RSyncError
from execnet_rsync.aio import RSync
from execnet_transport import HostNotFound

__all__ = [
    "Group",
    "makegateway",
    "default_group",
    "AsyncGateway",
    "AsyncChannel",
    "RSync",
    "RSyncError",
    "TerminateReport",
    "RemoteError",
    "TimeoutError",
    "HostNotFound",
]
