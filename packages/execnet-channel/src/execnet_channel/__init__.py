"""execnet's channel protocol: execution models, framing, channels and the gateway endpoint.

Both ends of every gateway run this package: the opener through a transport's Gateway
(a BaseGateway subclass), the other side through ``serve()``: see ``BaseGateway`` for
both ends in one process.

The constants:

- ``EXECMODEL_NAMES``: the names ``get_execmodel`` (and a spec's ``execmodel=``) takes.
- ``DEFAULT_MAX_FRAME``: the largest frame payload a gateway sends or accepts unless
  given ``max_frame=`` (1 GiB); ``MIN_MAX_FRAME`` (1 MiB) and ``MAX_PAYLOAD`` (4 GiB - 1,
  the format's ceiling) bound what ``max_frame=`` takes.
- ``NO_ENDMARKER``: ``Channel.setcallback``'s default endmarker: no call at the end.
- ``IO`` and ``BufferedIO``: the Protocols a transport's byte stream meets (they load
  ``typing`` on first use; a remote never needs them).

>>> EXECMODEL_NAMES
('thread', 'main_thread_only', 'eventlet', 'gevent')
>>> DEFAULT_MAX_FRAME == 1 << 30, MIN_MAX_FRAME == 1 << 20, MAX_PAYLOAD == (1 << 32) - 1
(True, True, True)
>>> import execnet_channel, os
>>> io = FdIO(*os.pipe())
>>> isinstance(io, execnet_channel.BufferedIO)
True
>>> io.close_read(); io.close_write()
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
from ._serve import preload, serve
from ._startup import TYPE_CHECKING
from ._tls import TLSConnection, TLSSocketIO
from ._trace import trace

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
    "preload",
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
