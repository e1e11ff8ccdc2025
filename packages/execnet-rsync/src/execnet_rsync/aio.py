"""RSync for asyncio code: ``await RSync(src).add_target(gw, dst).send()``.

    from execnet_rsync.aio import RSync

    await RSync("src/mypkg", verbose=False).add_target(gw, "/tmp/mypkg").send()

The transfer is ``execnet_rsync.RSync``'s (the same protocol, checks and errors),
run in one short-lived thread while the loop goes on: it reads the source tree from
disk, which asyncio cannot do without a thread anyway. Targets are AsyncGateways (or
sync gateways). Callbacks run in that thread.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Optional, Union

from execnet_channel.aio import AsyncGateway, run_in_thread

from ._protocols import SupportsRemoteExec
from ._rsync import Callback, PathArg
from ._rsync import RSync as SyncRSync

__all__ = ["RSync"]


class _Bridge(SyncRSync):
    """The sync RSync doing the work, asking the async one for its overridable hooks."""

    def __init__(
        self, owner: RSync, sourcedir: PathArg, callback: Optional[Callback], verbose: bool
    ):
        super().__init__(sourcedir, callback, verbose)
        self._owner = owner

    def filter(self, path: str) -> bool:
        return self._owner.filter(path)

    def _report_send_file(self, gateway: SupportsRemoteExec, modified_rel_path: str) -> None:
        self._owner._report_send_file(gateway, modified_rel_path)


class RSync:
    """Send a directory tree to gateways, transferring only what changed (see
    ``execnet_rsync.RSync``); ``send()`` is awaited. Subclasses may override ``filter``.

    >>> rsync = RSync("src/mypkg", verbose=False)
    >>> await rsync.add_target(gw, "/tmp/mypkg").send()              # doctest: +SKIP
    """

    def __init__(
        self, sourcedir: PathArg, callback: Optional[Callback] = None, verbose: bool = True
    ) -> None:
        self._sourcedir = os.fspath(sourcedir)
        self.rsync = _Bridge(self, sourcedir, callback, verbose)

    def filter(self, path: str) -> bool:
        """Whether to send ``path`` (runs in the transfer's thread)."""
        return True

    def _report_send_file(self, gateway: SupportsRemoteExec, modified_rel_path: str) -> None:
        SyncRSync._report_send_file(self.rsync, gateway, modified_rel_path)

    def add_target(
        self,
        gateway: Union[AsyncGateway[Any], SupportsRemoteExec],
        destdir: PathArg,
        finishedcallback: Optional[Callable[[], object]] = None,
        delete: bool = False,
    ) -> RSync:
        """Sync to ``destdir`` on ``gateway`` with the next send(); returns this RSync,
        so calls chain: ``await RSync(src).add_target(gw, dst).send()``."""
        target: SupportsRemoteExec = (
            gateway.gateway if isinstance(gateway, AsyncGateway) else gateway
        )
        self.rsync.add_target(target, destdir, finishedcallback, delete)
        return self

    async def send(self, raises: bool = True) -> None:
        """Sync every target (RSyncError naming the failed ones, as the sync send()).

        Cancelled, the transfer in its thread still runs to its end (a target is never
        left half-written by a cancellation); the cancellation comes through at once.
        """
        await asyncio.shield(run_in_thread(self.rsync.send, raises))
