"""What RSync needs from the layers below: a gateway that can run code remotely."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: at run time RSync needs no import from the layer below
    from execnet_channel import Channel


class SupportsRemoteExec(Protocol):
    """Anything with execnet's ``remote_exec``: every execnet gateway qualifies.

    RSync sends its receiving half as a module (``remote_exec(module)``) and talks to it
    over the channel it returns; it needs nothing else from a gateway.

    >>> import execnet
    >>> gateway: SupportsRemoteExec = execnet.makegateway("popen")
    >>> gateway.remote_exec("channel.send('ok')").receive()
    'ok'
    >>> execnet.default_group.terminate(30).killed
    []
    """

    def remote_exec(self, source: str | ModuleType, **kwargs: Any) -> Channel: ...
