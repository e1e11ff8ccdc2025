"""Old module path (execnet < 3): the channel layer's names and the serializer's.

pytest-xdist imports `execnet.gateway_base.ExecModel` for its type annotations.
"""

from __future__ import annotations

from execnet_channel import Channel, ExecModel, RemoteError, TimeoutError, get_execmodel
from execnet_serial import DataFormatError, DumpError, LoadError, dumps, loads

__all__ = [
    "ExecModel",
    "get_execmodel",
    "Channel",
    "RemoteError",
    "TimeoutError",
    "DataFormatError",
    "DumpError",
    "LoadError",
    "dumps",
    "loads",
]
