"""Reach Python interpreters for execnet: XSpec; popen, ssh, vagrant_ssh, socket, docker,
podman, kubectl and via; transports as plug-ins.

Also the bootstrap that starts the remote half, and the socket server
(``python -m execnet_transport.socketserver``).

    >>> from execnet_transport import XSpec, make_gateway
    >>> gw = make_gateway(XSpec("popen//id=gw0"))
    >>> gw.remote_exec("channel.send(1 + 1)").receive()
    2
    >>> gw.exit()
"""

from __future__ import annotations

from .__about__ import __version__
from ._bootstrap import TRAVELLING_PACKAGES
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
from ._transports import (
    ENTRY_POINT_GROUP,
    Command,
    StartRequest,
    Transport,
    known_transports,
    load_transport,
)
from ._xspec import XSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .socketserver import serve_socket

__all__ = [
    "XSpec",
    "make_gateway",
    "Gateway",
    "RInfo",
    "BootstrapError",
    "HostNotFound",
    "SshError",
    "SshAuthenticationError",
    "HostKeyMismatch",
    "SshTimeout",
    "RemotePythonMissing",
    "Transport",
    "Command",
    "StartRequest",
    "ENTRY_POINT_GROUP",
    "known_transports",
    "load_transport",
    "TRAVELLING_PACKAGES",
    "serve_socket",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The socket server loads on first use: most programs never run one (PEP 562).
    if name == "serve_socket":
        from .socketserver import serve_socket

        globals()[name] = serve_socket
        return serve_socket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
