"""The local Gateway: the channel layer's endpoint plus spec, process and post-mortem."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from execnet_channel import IO, BaseGateway

from ._forwarding import forwarding_of
from ._imports import ImportServer, check_import_names, imports_of
from ._max_frame import max_frame_of
from ._process import STDERR_TAIL_LINES
from ._protocols import GatewayRegistry
from ._xspec import XSpec

__all__ = ["Gateway", "RInfo"]


class Child(Protocol):
    """What a gateway knows of the process behind it (a local child or a proxied one)."""

    @property
    def pid(self) -> Optional[int]: ...
    def wait(self, timeout: Optional[float]) -> Optional[int]: ...
    def kill(self) -> None: ...
    def postmortem(self, wait: float = 1.0) -> str: ...


class RInfo:
    """Facts about the remote interpreter, read as attributes or keys: what
    ``Gateway._rinfo()`` returns (the name execnet's API gives it; pytest-xdist calls it).

    >>> import os, sys
    >>> from execnet_transport import XSpec, make_gateway
    >>> gw = make_gateway(XSpec("popen//id=gw0"))
    >>> info = gw._rinfo()
    >>> info.version_info[:3] == tuple(sys.version_info[:3]), info["cwd"] == os.getcwd()
    (True, True)
    >>> info.pid == gw.child_pid, "executable" in info
    (True, True)
    >>> gw.exit()
    """

    executable: str
    version_info: Tuple[Any, ...]
    platform: str
    cwd: str
    pid: int

    def __init__(self, facts: Dict[str, Any]) -> None:
        facts = dict(facts)
        if "version_info" in facts:
            facts["version_info"] = tuple(facts["version_info"])
        self.__dict__.update(facts)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def keys(self) -> Any:
        return self.__dict__.keys()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RInfo) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in sorted(self.__dict__.items()))
        return f"RInfo({fields})"


class Gateway(BaseGateway):
    """A gateway to an interpreter this process started or reached (see make_gateway).

    >>> from execnet_transport import XSpec, make_gateway
    >>> gw = make_gateway(XSpec("popen//id=gw0"))
    >>> gw.remote_exec("channel.send(6 * 7)").receive()
    42
    >>> gw.exit()
    >>> gw.join(10)
    >>> gw.wait_child(10)
    0
    """

    #: What holds this gateway and hears when it exits (a Group sets itself), or None.
    group: Optional[GatewayRegistry]
    # What _rinfo() returns; absent until its first call. execnet 2.1.2 keeps it under
    # this name and code written against it reads, assigns and deletes it.
    _cache_rinfo: Any

    def __init__(
        self,
        io: IO,
        spec: XSpec,
        *,
        child: Optional[Child] = None,
        via: Optional[Gateway] = None,
        remoteaddress: Optional[str] = None,
        lost_connection: str = "",
    ) -> None:
        # Set before the receiver starts: it may need them for a post-mortem at once.
        self.spec = spec
        self.remoteaddress = remoteaddress
        self._child = child
        self.via_gateway = via
        self.group = None
        self._lost_connection = lost_connection
        self._postmortem: Optional[str] = None
        self._exit_requested = False
        self._import_server: Any = None
        forwarding = forwarding_of(spec)
        self._end_lock = threading.Lock()
        self._end_callbacks: Optional[List[Callable[[], None]]] = []  # None once ended
        super().__init__(io, str(spec.id), opener=True, max_frame=max_frame_of(spec))
        if forwarding is not None:
            # sent before anything else: the remote forwards before any user code runs
            self.forward_output(output=forwarding[0], logging=forwarding[1])
        names = imports_of(spec)
        if names:
            self.allow_imports(*names)

    # -- remote import on demand ---------------------------------------------------

    def allow_imports(self, *names: str) -> None:
        """Let code on the remote import these top-level packages (or modules) from this
        process when it cannot import them itself: ``gw.allow_imports("mypkg", "attrs")``
        (the spec key ``imports=mypkg,attrs`` does it at the start).

        The remote asks only for names allowed here (and for their submodules); this side
        finds them with its own import system and sends their source (it never runs
        them); extension modules are refused. Allowing is additive and takes effect for
        everything the remote imports after this call.
        """
        checked = check_import_names(names, f"allow_imports() of gateway {self.id!r}")
        if not checked:
            return
        if self._import_server is None:
            self._import_server = ImportServer(self)
        self._import_server.allowed.update(checked)
        self._send_allow_imports(checked)

    def _on_import_request(self, channel_id: int, request: Any) -> None:
        server = self._import_server
        if server is None:
            super()._on_import_request(channel_id, request)
        else:
            server.submit(channel_id, request)

    # -- what pytest-xdist and the group read -------------------------------------

    def _rinfo(self, update: bool = False) -> RInfo:
        """executable, version_info, platform, cwd, pid of the remote.

        Cached in ``self._cache_rinfo`` (where execnet 2.1.2 keeps it): later calls
        return it unchanged, whatever it was set to; ``update=True`` (or deleting the
        attribute) asks the remote again, e.g. for its cwd after a chdir there.
        Answered by the remote's receiver, so it works while the remote's main thread is
        busy with a task (main_thread_only).
        """
        if update or not hasattr(self, "_cache_rinfo"):
            self._cache_rinfo = RInfo(self._remote_info())
        return self._cache_rinfo  # type: ignore[no-any-return]

    @property
    def _group(self) -> Optional[GatewayRegistry]:
        """The earlier name of ``group``, kept for code that reads or sets it."""
        return self.group

    @_group.setter
    def _group(self, group: Optional[GatewayRegistry]) -> None:
        self.group = group

    # -- what ending it for sure needs (the Terminable protocol) --------------------

    @property
    def child_pid(self) -> Optional[int]:
        """The local child process's id (popen: the interpreter; ssh, vagrant_ssh: the
        client); None for socket gateways and via-proxied ones."""
        return self._child.pid if self._child is not None else None

    def wait_child(self, timeout: Optional[float]) -> Optional[int]:
        """The child's exit status, or None if it still runs after `timeout` seconds
        (None at once for a socket gateway: no child of ours)."""
        if self._child is None:
            return None
        return self._child.wait(timeout)

    def kill_child(self) -> None:
        """SIGKILL the child (a via gateway's: through its proxy), if any; never blocks."""
        if self._child is not None:
            self._child.kill()

    def cut_connection(self) -> None:
        """Close both directions of the connection now: a receiver blocked on it sees
        the end (a via gateway's proxy also kills its child; a socket server's process
        is out of reach). For a gateway that does not exit when asked."""
        self._io.kill()
        self._io.close_read()
        self._io.close_write()

    def exit(self) -> None:
        """Tell the remote to terminate and close our side; idempotent."""
        self._exit_requested = True
        super().exit()
        group, self.group = self.group, None
        if group is not None:
            group.gateway_exited(self)

    def _on_end(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the connection has ended (now, if it has already):
        a transport's release of what the gateway shared (an ssh control connection)."""
        with self._end_lock:
            if self._end_callbacks is not None:
                self._end_callbacks.append(callback)
                return
        callback()

    def _after_connection_lost(self) -> None:
        # The receiver has ended: nothing more will be read or written, so release the
        # pipes or socket now rather than at garbage collection.
        super()._after_connection_lost()
        with self._writelock:
            self._io.close_write()
        self._io.close_read()
        with self._end_lock:
            callbacks, self._end_callbacks = self._end_callbacks or [], None
        for callback in callbacks:
            callback()

    # -- post-mortem --------------------------------------------------------------

    def _describe_eof(self) -> str:
        """What waiters on a lost connection are told: how the remote ended."""
        if self._exit_requested:
            return f"gateway {self.id!r} ({self.spec}): exited"
        if self._postmortem is None:
            if self._child is not None:
                self._postmortem = f"the remote process ended: {self._child.postmortem()}"
                forwarded = self._forwarded_stderr()
                if forwarded:
                    self._postmortem += "; last lines of its forwarded stderr:\n" + forwarded
            else:
                self._postmortem = self._lost_connection or "the connection was closed"
        return f"gateway {self.id!r} ({self.spec}): connection lost; {self._postmortem}"

    def _forwarded_stderr(self) -> str:
        """The last lines of what the remote's fd 2 sent here while forwarded (its own
        stderr pipe, which the post-mortem reads, had none of them)."""
        receiver = self._output
        if receiver is None or not receiver.stderr_tail:
            return ""
        text = bytes(receiver.stderr_tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])

    def _describe_death(self) -> Optional[str]:
        """The post-mortem, unless the connection ended because we asked it to."""
        return None if self._exit_requested else self._postmortem

    def __repr__(self) -> str:
        receiving = "receive-live" if self.hasreceiver() else "not-receiving"
        text = (
            f"<Gateway id={self.id!r} {receiving}, {self.execmodel.backend} model, "
            f"{self._numchannels()} active channels"
        )
        if self._postmortem is not None and not self._exit_requested:
            text += f", {self._postmortem.splitlines()[0]}"
        return text + ">"
