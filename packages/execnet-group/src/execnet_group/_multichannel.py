"""MultiChannel: one operation on many channels (what Group.remote_exec returns)."""

from __future__ import annotations

import queue as _queue
from typing import TYPE_CHECKING, Any, Iterable, Iterator, List, Tuple, Union, overload

if TYPE_CHECKING:
    from execnet_channel import Channel

_NO_ENDMARKER: Any = object()


class MultiChannel:
    """A list of channels with helpers that act on each of them.

    >>> from execnet_group import Group
    >>> group = Group(["popen", "popen"])
    >>> mch = group.remote_exec("channel.send(channel.receive() + 1)")
    >>> mch.send_each(41)
    >>> mch.receive_each()
    [42, 42]
    >>> mch.waitclose()
    >>> _ = group.terminate(timeout=30)
    """

    def __init__(self, channels: Iterable[Channel]) -> None:
        self._channels: List[Channel] = list(channels)
        self._queue: _queue.Queue[Tuple[Channel, Any]] | None = None

    def __repr__(self) -> str:
        ids = ", ".join(str(channel.id) for channel in self._channels)
        return f"<MultiChannel [{ids}]>"

    def __len__(self) -> int:
        return len(self._channels)

    def __iter__(self) -> Iterator[Channel]:
        return iter(self._channels)

    @overload
    def __getitem__(self, key: int) -> Channel: ...
    @overload
    def __getitem__(self, key: slice) -> List[Channel]: ...
    def __getitem__(self, key: Union[int, slice]) -> Union[Channel, List[Channel]]:
        return self._channels[key]

    def __contains__(self, channel: object) -> bool:
        return channel in self._channels

    def send_each(self, item: object) -> None:
        """Send `item` on every channel, in order."""
        for channel in self._channels:
            channel.send(item)

    def receive_each(self, withchannel: bool = False, timeout: float | None = None) -> List[Any]:
        """Receive one item from every channel, in channel order.

        With `withchannel=True` each entry is a `(channel, item)` pair. A remote failure
        raises the channel's RemoteError; `timeout` applies to each receive. Without a
        timeout each channel's `receive()` is called with no argument, as execnet 2.1.2
        does, so objects with only `receive()` (duck-typed channels) work too.
        """
        items: List[Any] = []
        for channel in self._channels:
            item = channel.receive() if timeout is None else channel.receive(timeout)
            items.append((channel, item) if withchannel else item)
        return items

    receive = receive_each

    def make_receive_queue(
        self, endmarker: Any = _NO_ENDMARKER
    ) -> _queue.Queue[Tuple[Channel, Any]]:
        """A queue that gets `(channel, item)` for every item any channel receives.

        Each channel's callback feeds the queue, so `receive()` on the channels is no
        longer possible. With an `endmarker`, `(channel, endmarker)` is put once when
        that channel closes (also when its gateway dies). Calling it again returns the
        same queue.
        """
        if self._queue is not None:
            return self._queue
        if self._channels:
            received: _queue.Queue[Tuple[Channel, Any]] = self._channels[
                0
            ].gateway.execmodel.queue.Queue()
        else:
            received = _queue.Queue()
        for channel in self._channels:

            def put(obj: Any, channel: Channel = channel) -> None:
                received.put((channel, obj))

            if endmarker is _NO_ENDMARKER:
                channel.setcallback(put)
            else:
                channel.setcallback(put, endmarker=endmarker)
        self._queue = received
        return received

    def waitclose(self, timeout: float | None = None) -> None:
        """Wait until every channel is closed; then re-raise the first RemoteError.

        Every channel is waited for even when an earlier one failed, so no failure
        goes unnoticed because another came first. `timeout` applies to each channel;
        without one, each channel's `waitclose()` is called with no argument (as in
        execnet 2.1.2, for duck-typed channels).
        """
        from execnet_channel import RemoteError

        first: RemoteError | None = None
        for channel in self._channels:
            try:
                if timeout is None:
                    channel.waitclose()
                else:
                    channel.waitclose(timeout)
            except RemoteError as error:
                if first is None:
                    first = error
        if first is not None:
            raise first
