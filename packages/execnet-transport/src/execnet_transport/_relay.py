"""socket=HOST:PORT//via=ID: the via gateway's host makes the TCP connection and relays it.

The relay travels as the remote_exec source SOCKET_RELAY (standard library only). It
receives ``(host, port, timeout, piece)``, connects, and answers ``("connected", None)``,
``("unresolved", text)`` or ``("unreachable", text)``. Then bytes items are the
connection's bytes both ways, in pieces of at most ``piece`` bytes (they fit the via
gateway's own frames); None is the end of a direction (the other side then shuts its
writing half). Closing the channel ends the relay at once: its socket is shut down
(which wakes its reader and a blocked write), its threads end, the socket is closed.

Here the relayed stream arrives on one end of a local socket pair (`SocketRelay` pumps
it), and the socket transport runs over the other end exactly what it runs over a TCP
socket: TLS (verified end to end: the via host sees only ciphertext), the EXECNET-2
secret proof, the bootstrap. Memory follows what arrived: an item is held until the
socket pair (or, on the via host, the server's socket) took it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Tuple

from execnet_channel import Channel, RemoteError, TimeoutError

from ._errors import BootstrapError, HostNotFound
from ._gateway import Gateway
from ._via import _ITEM_OVERHEAD, PIECE
from ._xspec import XSpec

__all__ = ["SOCKET_RELAY", "SocketRelay", "relay_connection"]

# Beyond the connect timeout: how long the via host may take to answer at all.
_ANSWER_GRACE = 10.0
# How long stopping the relay waits for each local pump thread (both are woken first).
_JOIN_TIMEOUT = 10.0

# The hop's half. Its socket is used by two threads of its own (the reader sends what
# arrives, the writer sends what the queue holds), never by the task itself, which only
# moves items from the channel to the queue: a blocked socket cannot hold up the hop's
# gateway, and the task waits through the hop's execution model (threads or greenlets).
SOCKET_RELAY = """
import socket, threading
import queue
host, port, timeout, piece = channel.receive()
try:
    sock = socket.create_connection((host, port), timeout)
except socket.gaierror as exc:
    channel.send(("unresolved", str(exc)))
except OSError as exc:
    channel.send(("unreachable", str(exc)))
else:
    sock.settimeout(None)
    items = queue.Queue()
    END = object()

    def cut():  # wakes the reader's recv and the writer's sendall
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def upward():
        try:
            while True:
                data = sock.recv(piece)
                if not data:
                    break
                channel.send(data)
            channel.send(None)
        except Exception:
            pass  # the channel is closed: the opener is gone

    def downward():
        try:
            while True:
                item = items.get()
                if item is END:
                    break
                if item is None:
                    sock.shutdown(socket.SHUT_WR)
                else:
                    sock.sendall(item)
        except OSError:
            pass  # the server is gone; the reader sees the end too
        cut()
        reader.join()
        sock.close()

    channel.send(("connected", None))
    reader = threading.Thread(target=upward, name="execnet socket relay")
    writer = threading.Thread(target=downward, name="execnet socket relay")
    reader.daemon = writer.daemon = True
    reader.start()
    writer.start()
    while True:
        try:
            item = channel.receive()
        except Exception:  # EOFError: the opener closed it, or the hop lost its connection
            break
        items.put(item)
    cut()
    items.put(END)
"""


def relay_connection(
    spec: XSpec, sock_module: Any, via: Gateway, address: Tuple[str, int], timeout: float
) -> Tuple[Any, SocketRelay]:
    """Connect to host:port from `via`'s host; (a local socket carrying that connection,
    the running relay). HostNotFound or BootstrapError, naming `via`, as a direct
    connection would raise them."""
    host, port = address
    piece = min(PIECE, via.max_frame - _ITEM_OVERHEAD)
    where = f"gateway {via.id!r}'s host"
    channel = via.remote_exec(SOCKET_RELAY)
    try:
        channel.send((host, port, timeout, piece))
        answer = channel.receive(timeout + _ANSWER_GRACE)
        kind, text = answer
    except (EOFError, RemoteError, TimeoutError, OSError, ValueError, TypeError) as exc:
        with contextlib.suppress(OSError, ValueError):
            channel.close()
        raise BootstrapError(
            spec, f"the relay to {host}:{port} on {where} did not start: {exc}"
        ) from None
    if kind == "unresolved":
        raise HostNotFound(spec, f"cannot resolve {host!r} on {where}: {text}")
    if kind != "connected":
        raise BootstrapError(
            spec, f"cannot connect to the socket server at {host}:{port} from {where}: {text}"
        )
    ours, theirs = socket.socketpair()
    try:
        if sock_module is not socket:  # a greenlet model's socket over the same descriptor
            ours = sock_module.socket(fileno=ours.detach())
        ours.settimeout(timeout)
    except BaseException:
        ours.close()
        theirs.close()
        channel.close()
        raise
    relay = SocketRelay(channel, theirs, piece, str(spec.id))
    return ours, relay


class SocketRelay:
    """Pumps a relay channel's bytes to and from a local socket, in two threads.

    `stop` (idempotent) ends it: the channel closes (the relay on the via host then
    ends), the socket is shut down (waking both pumps), the pumps are joined.
    """

    def __init__(self, channel: Channel, sock: socket.socket, piece: int, name: str) -> None:
        self._channel = channel
        self._sock = sock
        self._piece = piece
        self._lock = threading.Lock()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._down, name=f"execnet relay {name} in", daemon=True),
            threading.Thread(target=self._up, name=f"execnet relay {name} out", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _down(self) -> None:
        """The via host's bytes into the local socket; its end shuts our writing half."""
        try:
            while True:
                item = self._channel.receive()
                if not isinstance(item, bytes):  # None: the server ended its direction
                    break
                self._sock.sendall(item)
        except Exception:  # EOFError, RemoteError, a closed socket: the end
            pass
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def _up(self) -> None:
        """The local socket's bytes to the via host, in pieces; its end as None."""
        try:
            while True:
                data = self._sock.recv(self._piece)
                if not data:
                    break
                self._channel.send(data)
            self._channel.send(None)
        except (OSError, ValueError, EOFError):
            pass  # stopped, or the via gateway is gone

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        with contextlib.suppress(OSError, ValueError):
            self._channel.close()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(_JOIN_TIMEOUT)
        self._sock.close()

    def alive(self) -> bool:
        """Whether a pump still runs (for tests and the post-mortem)."""
        return any(thread.is_alive() for thread in self._threads)
