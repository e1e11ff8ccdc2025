"""Reach Python interpreters for execnet: XSpec; popen, ssh, vagrant_ssh, socket, docker,
podman, kubectl and via; transports as plug-ins.

Also the bootstrap that starts the remote half, and the socket server
(``python -m execnet_transport.socketserver``).

    >>> from execnet_transport import XSpec, make_gateway
    >>> gw = make_gateway(XSpec("popen//id=gw0"))
    >>> gw.remote_exec("channel.send(1 + 1)").receive()
    2
    >>> gw.exit()

``TRAVELLING_PACKAGES`` names the packages whose source is sent to a remote that cannot
import them, in the order it installs them:

    >>> TRAVELLING_PACKAGES
    ('execnet_serial', 'execnet_channel')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .__about__ import __version__
from ._builtin import starts_on_this_cpu
from ._bundle import TRAVELLING_PACKAGES
from ._connect import make_gateway
from ._errors import (
    BootstrapError,
    HostKeyMismatch,
    HostNotFound,
    RemotePythonMissing,
    SshAuthenticationError,
    SshError,
    SshTimeout,
)
from ._gateway import Gateway, RInfo
from ._protocols import GatewayRegistry, Terminable
from ._transports import (
    ENTRY_POINT_GROUP,
    Command,
    Connection,
    StartRequest,
    Transport,
    TransportIO,
    known_transports,
    load_transport,
)
from ._xspec import XSpec

if TYPE_CHECKING:
    from .socketserver import serve_socket

__all__ = [
    "XSpec",
    "make_gateway",
    "Gateway",
    "RInfo",
    "Terminable",
    "GatewayRegistry",
    "BootstrapError",
    "HostNotFound",
    "SshError",
    "SshAuthenticationError",
    "HostKeyMismatch",
    "SshTimeout",
    "RemotePythonMissing",
    "Transport",
    "TransportIO",
    "Command",
    "Connection",
    "StartRequest",
    "ENTRY_POINT_GROUP",
    "known_transports",
    "load_transport",
    "TRAVELLING_PACKAGES",
    "serve_socket",
    "starts_on_this_cpu",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The socket server loads on first use (PEP 562): most programs never run one, and its
    # imports would cost a program's first gateway about 4 ms (benchmarks/README.md,
    # "Start-up tricks we keep").
    if name == "serve_socket":
        from .socketserver import serve_socket

        globals()[name] = serve_socket
        return serve_socket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
