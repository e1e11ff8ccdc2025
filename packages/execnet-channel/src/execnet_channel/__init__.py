"""execnet's channel protocol: execution models, framing, channels and the gateway endpoint.

Both ends of every gateway run this package: the opener through a transport's Gateway
(a BaseGateway subclass), the other side through ``serve()``.
"""

from __future__ import annotations

from .__about__ import __version__
from ._channel import NO_ENDMARKER, Channel, ChannelFileRead, ChannelFileWrite
from ._errors import (
    ChannelCallbackError,
    ChannelClosedError,
    NotProperlyTerminated,
    RemoteError,
    TimeoutError,
)
from ._execmodels import EXECMODEL_NAMES, ExecModel, get_execmodel
from ._frames import DEFAULT_MAX_FRAME, MAX_PAYLOAD, MIN_MAX_FRAME, FrameError, FrameTooLarge
from ._gateway import BaseGateway, RemoteStatus
from ._io import FdIO, SocketIO, StdioIO
from ._serve import serve
from ._tls import TLSConnection, TLSSocketIO
from ._trace import trace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._protocols import IO, BufferedIO

__all__ = [
    "__version__",
    # execution models
    "EXECMODEL_NAMES",
    "ExecModel",
    "get_execmodel",
    # the byte stream
    "IO",
    "BufferedIO",
    "FdIO",
    "SocketIO",
    "StdioIO",
    "TLSConnection",
    "TLSSocketIO",
    # channels and the endpoint
    "Channel",
    "ChannelFileRead",
    "ChannelFileWrite",
    "NO_ENDMARKER",
    "BaseGateway",
    "RemoteStatus",
    "DEFAULT_MAX_FRAME",
    "MIN_MAX_FRAME",
    "MAX_PAYLOAD",
    "serve",
    # errors
    "RemoteError",
    "TimeoutError",
    "ChannelClosedError",
    "FrameError",
    "FrameTooLarge",
    "ChannelCallbackError",
    "NotProperlyTerminated",
    # tracing
    "trace",
]


def __getattr__(name: str) -> object:
    # The Protocols need `typing`, which a remote interpreter never imports (it is the
    # biggest part of a start): they load on first use (PEP 562).
    if name in ("IO", "BufferedIO"):
        from . import _protocols

        value = getattr(_protocols, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
