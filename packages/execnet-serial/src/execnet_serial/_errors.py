"""The exceptions of the byte format."""

from __future__ import annotations

__all__ = ["DataFormatError", "DumpError", "LoadError"]


class DataFormatError(Exception):
    """Base of every error about the byte format: catch this for both directions.

    >>> import execnet_serial
    >>> try:
    ...     execnet_serial.loads(b"garbage")
    ... except execnet_serial.DataFormatError as exc:
    ...     print(type(exc).__name__)
    LoadError
    """


class DumpError(DataFormatError):
    """A value cannot be written: an unsupported type (named in the message), a str
    that is not UTF-8 encodable, a length beyond 2**31-1.

    Trying ``dumps(x)`` is the way to ask "is x serializable":

    >>> import execnet_serial
    >>> try:
    ...     execnet_serial.dumps(object())
    ... except execnet_serial.DumpError as exc:
    ...     print(exc)
    can't serialize <class 'object'>
    """


class LoadError(DataFormatError):
    """Bytes that are not a valid value; the message names the opcode and its offset.

    >>> import execnet_serial
    >>> try:
    ...     execnet_serial.loads(b"\\x02Z")
    ... except execnet_serial.LoadError as exc:
    ...     print(exc)
    unknown opcode b'Z' at offset 1
    """
