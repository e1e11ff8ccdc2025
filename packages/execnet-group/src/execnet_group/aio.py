"""Groups of gateways for asyncio code: ``async with Group() as group``.

    from execnet_group.aio import Group

    async with Group() as group:                    # terminates its gateways on exit
        gw = await group.makegateway("popen")       # an AsyncGateway
        channel = gw.remote_exec("channel.send(42)")
        assert await channel.receive(timeout=5) == 42

The bootstrap of a gateway (starting a process, a connection, the handshake) runs in a
short-lived thread while the loop goes on; ``terminate`` too. A cancelled
``makegateway`` waits for its bootstrap to end, terminates the gateway it made and only
then lets the cancellation through, so it leaves no process behind. Waiting on channels
takes no thread at all (``execnet_channel.aio``).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Dict, Iterable, Iterator, List, Optional, Type, Union

from execnet_channel.aio import AsyncChannel, AsyncGateway, run_in_thread
from execnet_transport import Gateway, XSpec

from ._group import Group as SyncGroup
from ._group import default_group as sync_default_group
from ._termination import TerminateReport, terminate_gateways

__all__ = ["Group", "makegateway", "default_group", "AsyncGateway", "AsyncChannel"]

SpecLike = Union[XSpec, str]


class Group:
    """The asyncio form of ``execnet_group.Group``; ``group`` is the sync Group it
    drives (a new one by default), whose gateways sync code may use too.

    >>> async with Group() as group:                                 # doctest: +SKIP
    ...     gw = await group.makegateway("popen//id=worker")
    ...     group["worker"] is gw
    True
    """

    def __init__(self, execmodel: str = "thread", *, group: Optional[SyncGroup] = None) -> None:
        self.group = SyncGroup(execmodel=execmodel) if group is None else group
        self._wrapped: Dict[int, AsyncGateway[Gateway]] = {}

    def __repr__(self) -> str:
        return "<Async" + repr(self.group)[1:]

    def _wrap(self, gateway: Gateway) -> AsyncGateway[Gateway]:
        wrapped = self._wrapped.get(id(gateway))
        if wrapped is None or wrapped.gateway is not gateway:
            wrapped = self._wrapped[id(gateway)] = AsyncGateway(gateway)
        return wrapped

    def __len__(self) -> int:
        return len(self.group)

    def __iter__(self) -> Iterator[AsyncGateway[Gateway]]:
        return iter([self._wrap(gateway) for gateway in self.group])

    def __getitem__(self, key: Union[int, str]) -> AsyncGateway[Gateway]:
        return self._wrap(self.group[key])

    def __contains__(self, key: object) -> bool:
        if isinstance(key, AsyncGateway):
            key = key.gateway
        return key in self.group

    async def makegateway(self, spec: Optional[SpecLike] = None) -> AsyncGateway[Gateway]:
        """Open a gateway for ``spec`` (as ``Group.makegateway``) without blocking the
        loop. HostNotFound and the bootstrap's other errors as in the sync API."""
        gateway = await _bootstrapped(run_in_thread(self.group.makegateway, spec))
        return self._wrap(gateway)

    async def makegateways(
        self, specs: Iterable[Optional[SpecLike]]
    ) -> List[AsyncGateway[Gateway]]:
        """Open gateways for ``specs`` side by side (ids and order as if one by one)."""
        made = await _bootstrapped(run_in_thread(self.group.makegateways, list(specs)))
        return [self._wrap(gateway) for gateway in made]

    def remote_exec(self, source: object, **kwargs: Any) -> List[AsyncChannel]:
        """Run ``source`` on every gateway; their AsyncChannels, in group order."""
        channels = self.group.remote_exec(source, **kwargs)  # type: ignore[arg-type]
        return [AsyncChannel(channel) for channel in channels]

    async def terminate(self, timeout: Optional[float] = None) -> TerminateReport:
        """End every gateway and its process (``Group.terminate``), the loop running on."""
        report = await asyncio.shield(run_in_thread(self.group.terminate, timeout))
        self._wrapped.clear()
        return report

    async def __aenter__(self) -> Group:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.terminate(timeout=_EXIT_TIMEOUT)


_EXIT_TIMEOUT = 5.0  # seconds `async with` gives its gateways before killing them


async def _bootstrapped(bootstrap: Any) -> Any:
    """Await a bootstrap (a gateway, or a list of them). Cancelled, it waits for the
    bootstrap to end and terminates what it made before letting the cancellation
    through: a cancelled makegateway leaves no process behind."""
    task = asyncio.ensure_future(bootstrap)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        made: List[Gateway] = []
        while True:
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError:
                continue  # cancelled again: the cleanup still has to happen
            except Exception:
                break  # the bootstrap failed: nothing to end
            made = result if isinstance(result, list) else [result]
            break
        if made:
            for gateway in made:
                gateway.exit()
            cleanup = asyncio.ensure_future(run_in_thread(terminate_gateways, made, 1.0))
            while not cleanup.done():
                try:
                    await asyncio.shield(cleanup)
                except asyncio.CancelledError:
                    continue
        raise


default_group = Group(group=sync_default_group)  # what makegateway() uses


async def makegateway(spec: Optional[SpecLike] = None) -> AsyncGateway[Gateway]:
    """Open a gateway in ``default_group`` (the sync ``default_group``'s, ended at exit)."""
    return await default_group.makegateway(spec)
