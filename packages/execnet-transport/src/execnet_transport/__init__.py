"""Reach Python interpreters for execnet: XSpec, popen, ssh, vagrant_ssh, socket and via.

Also the bootstrap that starts the remote half, and the socket server
(``python -m execnet_transport.socketserver``).

    >>> from execnet_transport import XSpec, make_gateway
    >>> gw = make_gateway(XSpec("popen//id=gw0"))
    >>> gw.remote_exec("channel.send(1 + 1)").receive()
    2
    >>> gw.exit()
"""

from __future__ import annotations

from typing import Callable, Optional

from .__about__ import __version__
from ._bootstrap import TRAVELLING_PACKAGES
from ._connect import make_gateway
from ._errors import BootstrapError, HostNotFound, SshError
from ._gateway import Gateway, RInfo
from ._xspec import XSpec


def serve_socket(
    host: str = "127.0.0.1",
    port: int = 8888,
    *,
    loop: bool = True,
    secret: Optional[bytes] = None,
    on_listening: Optional[Callable[[str, int], None]] = None,
) -> None:
    """Run the socket server here (see ``execnet_transport.socketserver``).

    >>> serve_socket("127.0.0.1", 8888, secret=b"s3cret")   # serves until interrupted
    """
    from .socketserver import serve_socket as serve

    serve(host, port, loop=loop, secret=secret, on_listening=on_listening)


__all__ = [
    "XSpec",
    "make_gateway",
    "Gateway",
    "RInfo",
    "BootstrapError",
    "HostNotFound",
    "SshError",
    "TRAVELLING_PACKAGES",
    "serve_socket",
    "__version__",
]
