"""Safe, cross-interpreter dumps/loads in execnet's wire format (no code, no pickle).

>>> import execnet_serial
>>> data = execnet_serial.dumps({"answer": [42, 1.5, None], "key": ("a", b"b")})
>>> execnet_serial.loads(data)
{'answer': [42, 1.5, None], 'key': ('a', b'b')}

The byte format, the channel hook and the guarantees on hostile input are described in
the package README. ``ChannelHook``, ``dumps_payload``, ``loads_payload``,
``dumps_payload_parts`` and ``loads_payload_at`` are the names the channel layer
(execnet-channel) builds on: the payload of a message, without the version byte.
"""

from __future__ import annotations

from .__about__ import __version__
from ._decoder import as_bytes, decode, loads_payload
from ._encoder import dumps_payload, dumps_payload_parts, encode
from ._errors import DataFormatError, DumpError, LoadError
from ._opcodes import VERSION_BYTE
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, BinaryIO, Union

    from ._hook import ChannelHook

__all__ = [
    "dumps",
    "loads",
    "dump",
    "load",
    "DataFormatError",
    "DumpError",
    "LoadError",
    "ChannelHook",
    "dumps_payload",
    "loads_payload",
    "dumps_payload_parts",
    "loads_payload_at",
    "__version__",
]

loads_payload_at = decode  # documented in _decoder.decode


def dumps(obj: object) -> bytes:
    """Serialize ``obj`` to bytes: the version byte ``0x02``, the opcodes, STOP.

    Accepts None, bool, int (any size), float, complex, str, bytes and lists, tuples,
    dicts, sets and frozensets of those, nested to any depth; types must match exactly
    (a subclass raises DumpError naming it).

    >>> dumps([1, "a"])
    b'\\x02K\\x00\\x00\\x00\\x02F\\x00\\x00\\x00\\x00F\\x00\\x00\\x00\\x01PF\\x00\\x00\\x00\\x01N\\x00\\x00\\x00\\x01aPQ'
    """
    return encode(obj, None, VERSION_BYTE)


def loads(
    data: Union[bytes, bytearray, memoryview],
    py2str_as_py3str: bool = False,
    py3str_as_py2str: bool = False,
) -> Any:
    """The value serialized in ``data`` (as written by ``dumps`` here or in execnet).

    ``py2str_as_py3str``: Python 2 ``str`` values load as str (latin-1) instead of bytes.
    ``py3str_as_py2str``: str values load as their UTF-8 bytes. Invalid data raises
    LoadError naming the opcode and offset.

    >>> loads(b"\\x02N\\x00\\x00\\x00\\x02hiQ")
    'hi'
    >>> loads(b"\\x02N\\x00\\x00\\x00\\x02hiQ", py3str_as_py2str=True)
    b'hi'
    """
    data = as_bytes(data)
    if data[:1] != VERSION_BYTE:
        raise LoadError(
            f"wrong format version {data[:1]!r} at offset 0 (expected {VERSION_BYTE!r})"
        )
    return decode(data, 1, len(data), py2str_as_py3str, py3str_as_py2str, None)


def dump(file: BinaryIO, obj: object) -> None:
    """Write ``dumps(obj)`` to a binary file; several values may follow each other.

    >>> import io
    >>> f = io.BytesIO()
    >>> dump(f, "one"); dump(f, 2)
    >>> _ = f.seek(0)
    >>> load(f), load(f)
    ('one', 2)
    """
    file.write(dumps(obj))


def load(file: BinaryIO, py2str_as_py3str: bool = False, py3str_as_py2str: bool = False) -> Any:
    """Read one value written by ``dump`` from a binary file, and no byte more.

    EOFError if the file ends before the value's STOP (or holds no value at all);
    LoadError for invalid data.

    >>> import io
    >>> f = io.BytesIO(dumps([1, 2]) + dumps("next"))
    >>> load(f), f.read() == dumps("next")
    ([1, 2], True)
    """
    from ._files import read_value  # first use: a remote's start skips it

    return read_value(file, py2str_as_py3str, py3str_as_py2str, None)


def __getattr__(name: str) -> object:
    # ChannelHook is a Protocol and needs `typing`, which a remote interpreter never
    # imports (it is the biggest part of a start): it loads on first use (PEP 562).
    if name == "ChannelHook":
        from ._hook import ChannelHook

        globals()[name] = ChannelHook
        return ChannelHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
