"""The ``max_frame=`` spec key: the largest frame a gateway sends or accepts.

The limit holds in both directions: the opener's gateway refuses bigger items in
``send()`` and closes the connection at the header of a bigger frame from the remote,
and the remote gets the same limit with the bootstrap config and does the same.
"""

from __future__ import annotations

from typing import Dict

from execnet_channel import DEFAULT_MAX_FRAME, MAX_PAYLOAD, MIN_MAX_FRAME

from ._xspec import XSpec

__all__ = ["max_frame_of", "parse_size"]

_UNITS: Dict[str, int] = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``64K``, ``512M``, ``2G`` (also ``2GiB``, ``2gb``): the
    units are powers of 1024. ValueError for anything else.

    >>> parse_size("64M"), parse_size("1g"), parse_size("4096")
    (67108864, 1073741824, 4096)
    """
    value = text.strip().upper()
    for suffix in ("IB", "B"):
        if value.endswith(suffix) and value[: -len(suffix)][-1:] in ("K", "M", "G"):
            value = value[: -len(suffix)]
            break
    unit = value[-1:] if value[-1:] in ("K", "M", "G") else ""
    number = value[: len(value) - len(unit)]
    if not number.isdigit():
        raise ValueError(f"not a size: {text!r}")
    return int(number) * _UNITS[unit]


def max_frame_of(spec: XSpec) -> int:
    """The maximum frame size the spec asks for (``max_frame=SIZE``), else the default
    (1 GiB). ``4G`` means the format's own ceiling, 4 GiB - 1 byte. ValueError naming
    the spec for a value that is not a size from 1M to 4G.

    >>> max_frame_of(XSpec("popen//max_frame=64M"))
    67108864
    """
    value = spec.max_frame
    if value is None:
        return DEFAULT_MAX_FRAME
    try:
        if value is True:
            raise ValueError("no value")
        size = parse_size(str(value))
        if size == MAX_PAYLOAD + 1:
            size = MAX_PAYLOAD
        if not MIN_MAX_FRAME <= size <= MAX_PAYLOAD:
            raise ValueError("out of range")
    except ValueError:
        raise ValueError(
            f"max_frame={value!r} in gateway spec {str(spec)!r}: expected a size from 1M "
            "to 4G (bytes, or with a K, M or G suffix, powers of 1024; e.g. max_frame=2G)"
        ) from None
    return size
