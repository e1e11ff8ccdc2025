"""What the layers above may rely on of a gateway, beyond the channel layer's endpoint.

execnet_group is written against these protocols (docs/CONTRACTS.md), and
execnet_transport.Gateway provides both sides of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["GatewayRegistry", "Terminable"]


class Terminable(Protocol):
    """What ending a gateway for sure needs of it (``execnet_group``'s terminate).

    ``Gateway`` provides it: tell it to exit, wait for its receiver and its local child
    process, then kill that process or, where there is none here (socket, via), cut
    the connection.

    >>> from execnet_transport import XSpec, make_gateway
    >>> gw: Terminable = make_gateway(XSpec("popen//id=gw0"))
    >>> gw.exit(); gw.join(10)
    >>> gw.hasreceiver(), gw.wait_child(10), gw.via_gateway
    (False, 0, None)
    """

    @property
    def id(self) -> str:
        """The gateway's id."""

    def exit(self) -> None:
        """Ask the remote to terminate; idempotent."""

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait up to `timeout` seconds for the receiver to finish."""

    def hasreceiver(self) -> bool:
        """Whether the receiver still runs (the connection is alive)."""

    @property
    def child_pid(self) -> Optional[int]:
        """The local child process's id (popen: the interpreter; ssh, vagrant_ssh: the
        client), None where the process is not a child of this one (socket, via)."""

    @property
    def via_gateway(self) -> Optional[Terminable]:
        """The gateway this one was started through (``via=``), else None."""

    def wait_child(self, timeout: Optional[float]) -> Optional[int]:
        """The child's exit status, None if it still runs after `timeout` seconds (or
        there is no child of this process; a via gateway's is its proxied child)."""

    def kill_child(self) -> None:
        """SIGKILL the child process (a via gateway's: through its proxy); never blocks."""

    def cut_connection(self) -> None:
        """Close both directions of the connection now (a via gateway's proxy then kills
        its child): a receiver blocked on it sees the end."""


class GatewayRegistry(Protocol):
    """What holds gateways and hears when one exits: ``Gateway.group`` (a Group).

    >>> from execnet_transport import XSpec, make_gateway
    >>> class Registry:
    ...     def gateway_exited(self, gateway):
    ...         print("exited:", gateway.id)
    >>> gw = make_gateway(XSpec("popen//id=gw1"))
    >>> gw.group = Registry()
    >>> gw.exit()
    exited: gw1
    >>> gw.join(10)
    """

    def gateway_exited(self, gateway: Gateway) -> None:
        """`gateway` was told to exit (``Gateway.exit``): forget it, but still reap it."""
