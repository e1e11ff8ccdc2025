"""What the serializer needs from whoever owns channels (the channel layer)."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["ChannelHook"]


class ChannelHook(Protocol):
    """Encodes and decodes channel references; the serializer knows nothing of channels.

    A value whose type is exactly ``channel_type`` is written as CHANNEL (``B``) with
    the int4 ``channel_id(value)``; on load, CHANNEL pushes ``channel_from_id(id)``.
    Without a hook, a channel on dump is a DumpError and CHANNEL on load a LoadError.

    >>> import execnet_serial
    >>> class Chan:
    ...     def __init__(self, id): self.id = id
    >>> class Hook:
    ...     channel_type = Chan
    ...     def channel_id(self, channel): return channel.id
    ...     def channel_from_id(self, channel_id): return Chan(channel_id)
    >>> data = execnet_serial.dumps_payload([Chan(3)], hook=Hook())
    >>> execnet_serial.loads_payload(data, hook=Hook())[0].id
    3
    """

    channel_type: type

    def channel_id(self, channel: Any) -> int:
        """The id to write for ``channel`` (an int4); raise DumpError to refuse it (a
        channel of another gateway)."""
        ...

    def channel_from_id(self, channel_id: int) -> Any:
        """The channel to load for an id read from the other side (an untrusted int4)."""
        ...
