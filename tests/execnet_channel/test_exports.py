"""The public surface of execnet_channel: exactly the documented names."""

from __future__ import annotations

import doctest

import pytest

import execnet_channel
from execnet_channel import _channel, _errors, _execmodels, _frames, _gateway, _io, _protocols

EXPECTED = {
    "__version__",
    "EXECMODEL_NAMES",
    "ExecModel",
    "get_execmodel",
    "IO",
    "BufferedIO",
    "FdIO",
    "SocketIO",
    "StdioIO",
    "TLSConnection",
    "TLSSocketIO",
    "Channel",
    "ChannelFileRead",
    "ChannelFileWrite",
    "NO_ENDMARKER",
    "BaseGateway",
    "RemoteStatus",
    "serve",
    "preload",
    "RemoteError",
    "TimeoutError",
    "ChannelClosedError",
    "FrameError",
    "FrameTooLarge",
    "DEFAULT_MAX_FRAME",
    "MIN_MAX_FRAME",
    "MAX_PAYLOAD",
    "ChannelCallbackError",
    "NotProperlyTerminated",
    "trace",
}


def test_all_is_the_documented_surface() -> None:
    assert set(execnet_channel.__all__) == EXPECTED
    assert len(execnet_channel.__all__) == len(EXPECTED)
    for name in EXPECTED:
        assert getattr(execnet_channel, name) is not None


def test_channel_error_attributes() -> None:
    assert execnet_channel.Channel.RemoteError is execnet_channel.RemoteError
    assert execnet_channel.Channel.TimeoutError is execnet_channel.TimeoutError
    assert issubclass(execnet_channel.TimeoutError, IOError)


@pytest.mark.parametrize(
    "module", [_channel, _errors, _execmodels, _frames, _gateway, _io, _protocols]
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0
