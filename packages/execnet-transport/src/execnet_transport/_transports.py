"""Transports as plug-ins: the interface, and the registry behind the spec keys.

A transport is named by its spec key (``popen``, ``ssh=HOST``, ``docker=CONTAINER``, a
plug-in's ``mykey=...``). It is found under that key in the entry point group
``execnet.transports``: the value is ``module:attribute``, an object offering the
`Transport` interface. The built-in transports are declared there too (this package's
pyproject.toml) and are loaded the same way, from the same table, without the scan of
installed distributions that a plug-in's key needs (done once per process, only when a
spec names a key that is not built in, or when an error lists the known keys).

A plug-in distribution declares, in its pyproject.toml::

    [project.entry-points."execnet.transports"]
    envi = "my_transport:ENVI"

and ``my_transport.ENVI`` is, for example::

    class EnvTransport:
        keys = ("envi_path",)            # the other spec keys it reads
        def check(self, spec): ...       # ValueError for a bad spec, before anything starts
        def start(self, request):        # a Command, or an IO it connected itself
            path = request.spec.envi_path or "/usr/bin:/bin"
            return Command(["env", "-i", f"PATH={path}", *request.python_args("python3")])

so ``envi//id=gw0`` starts a python in an empty environment.

A transport that reaches the interpreter itself returns a `TransportIO` (or a
`Connection` holding one, to say more about it): a byte stream to a running first stage
that waits for the bootstrap frame. make_gateway then sends the bootstrap over it and
makes the Gateway; the socket transport works so.
"""

from __future__ import annotations

import importlib
import shlex
import sys
import threading
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Protocol,
    Tuple,
    Union,
    runtime_checkable,
)

from execnet_channel import BufferedIO

from ._xspec import XSpec

if TYPE_CHECKING:
    from execnet_channel import ExecModel

    from ._errors import BootstrapError
    from ._gateway import Child, Gateway

__all__ = [
    "ENTRY_POINT_GROUP",
    "BUILTIN_TRANSPORTS",
    "Command",
    "Connection",
    "StartRequest",
    "Transport",
    "TransportIO",
    "known_transports",
    "load_transport",
    "python_command",
    "shell_command",
    "sudo_args",
    "sudo_failure",
]

ENTRY_POINT_GROUP = "execnet.transports"

# The built-in transports, as declared in the entry point group by this package.
BUILTIN_TRANSPORTS: Dict[str, str] = {
    "popen": "execnet_transport._builtin:POPEN",
    "ssh": "execnet_transport._ssh:SSH",
    "vagrant_ssh": "execnet_transport._builtin:VAGRANT_SSH",
    "socket": "execnet_transport._builtin:SOCKET",
    "docker": "execnet_transport._containers:DOCKER",
    "podman": "execnet_transport._containers:PODMAN",
    "kubectl": "execnet_transport._containers:KUBECTL",
}

# Classify an early end of a started command: (spec, reason, stderr, exit status) -> error.
Classify = Callable[[XSpec, str, str, Optional[int]], "BootstrapError"]


@dataclass
class Command:
    """What a transport returns to have its command started with the bootstrap on stdio.

    `args` is run as a child process (or, with ``via=``, on the via gateway's host); its
    stdin and stdout carry the protocol once the first stage runs (`StartRequest`'s
    `python_args`/`remote_command` build that part). `remoteaddress` is what
    ``gateway.remoteaddress`` shows. `release` is called once when the gateway ends (or
    its start failed): for shared resources such as ssh's control connection.
    `classify` turns an early end (exit status, stderr) into the error that explains it.
    `cache_key` names the interpreter for the cache of the code it compiled (default:
    `args`; ssh leaves out its control socket's path, which changes).
    """

    args: List[str]
    remoteaddress: Optional[str] = None
    # popen on this interpreter: the child imports the installed packages (no bundle)
    same_interpreter: bool = False
    # with via=: the position in args where the via host's own sys.executable goes
    python_at: Optional[int] = None
    release: Optional[Callable[[], None]] = None
    classify: Optional[Classify] = None
    env: Optional[Dict[str, str]] = field(default=None)
    # What names the interpreter for the cache of compiled code (default: args); args
    # that change from start to start without changing the interpreter leave it out.
    cache_key: Optional[Tuple[str, ...]] = None


@dataclass
class StartRequest:
    """What a transport receives: the parsed spec and what makes the gateway."""

    spec: XSpec
    stage: str  # the first stage: the remote runs `<python> -c <stage>`
    group: Any  # the Group making the gateway (execnet_group.Group), or None
    execmodel: ExecModel  # the local execution model
    via: Optional[Gateway]  # with via=ID: the gateway whose host runs the command
    installvia: Optional[Gateway]
    timeout: float  # seconds the bootstrap may take

    def python_args(self, default: str = "python3") -> List[str]:
        """``<python> [-B] -c <stage>`` as a list: python= split like a shell, or `default`."""
        return python_command(self.spec, self.stage, default)

    def remote_command(self, default: str = "python3") -> str:
        """The same as one shell command line (for ssh-like transports): python= as
        written, then ``-c`` and the quoted stage, behind ``sudo -n -u USER --`` for sudo=."""
        return shell_command(self.spec, self.stage, default)


def python_command(spec: XSpec, stage: str, default: str) -> List[str]:
    """``<python> [-B] -c <stage>``: python= split like a shell, else `default` as is."""
    if spec.python and spec.python is not True:
        args = shlex.split(spec.python)
        if not args:
            raise ValueError(f"empty python= in gateway spec {str(spec)!r}")
    else:
        args = [default]
    if spec.dont_write_bytecode:
        args.append("-B")
    return [*args, "-c", stage]


def shell_command(spec: XSpec, stage: str, default: str = "python3") -> str:
    """``[sudo -n -u USER --] <python> [-B] -c '<stage>'`` for a remote shell; python= is
    given to the shell as written."""
    python = spec.python if spec.python and spec.python is not True else default
    flags = " -B" if spec.dont_write_bytecode else ""
    sudo = " ".join(shlex.quote(arg) for arg in sudo_args(spec))
    return f"{sudo} {python}{flags} -c {shlex.quote(stage)}".lstrip()


@runtime_checkable
class TransportIO(BufferedIO, Protocol):
    """The byte stream a transport may return instead of a `Command`: the channel
    layer's BufferedIO (``readinto``, ``writev``, ``read``, ``write``, ``close_read``,
    ``close_write``, ``wait``, ``kill``), what the gateway's receiver and senders use.

    When `Transport.start` returns it, the stream must already reach a **running first
    stage that waits for the bootstrap frame**: a process the transport started itself
    with ``python -c <request.stage>`` and this stream on its stdin/stdout (a socket
    pair, a pty, a tunnel), or a socket server that accepted the connection, passed its
    handshake and runs ``first_stage("socket")`` (the socket transport reads through its
    ``SEND_BUNDLE`` request before it returns). Whatever comes before the bootstrap's
    marker is dropped as noise. make_gateway then writes the bootstrap frame (always with
    the travelling modules' sources: the far interpreter is unknown), reads through the
    marker and makes the Gateway over the stream.

    One thread reads (``readinto``) while others write (``writev``, one frame per call):
    the stream must allow that. ``close_read`` must wake a ``readinto`` blocked in
    another thread (it raises EOFError then): that ends a bootstrap that overran its
    time and a gateway cut by ``cut_connection``. ``kill`` ends the process behind the
    stream, if the transport has one (else it does nothing).

    The channel layer's ``SocketIO``, ``TLSSocketIO`` and ``FdIO`` are such streams:

    >>> import socket
    >>> from execnet_channel import SocketIO
    >>> ours, theirs = socket.socketpair()
    >>> isinstance(SocketIO(ours), TransportIO)
    True
    >>> ours.close(); theirs.close()
    """


@dataclass
class Connection:
    """A `TransportIO` with what the gateway should know of it (what `Transport.start`
    returns when a bare IO would not say enough).

    `remoteaddress` is what ``gateway.remoteaddress`` shows; `lost_connection` what a
    waiter on a connection that broke is told (the default names neither cause nor
    place). `child` is the process behind the stream when the transport started one
    (its pid, wait, kill and post-mortem serve ``gateway.child_pid`` and friends).
    `release` is called once when the gateway ends (or its start failed): close what
    the transport keeps open beside the stream (a relay, a tunnel). `explain` is asked,
    when the bootstrap fails, what the far end said about it (a server's log). `ready`
    says the remote already ran the bootstrap and serves (the built-in fork server's
    children): make_gateway then only makes the Gateway over it.
    """

    io: TransportIO
    remoteaddress: Optional[str] = None
    lost_connection: str = ""
    child: Optional[Child] = None
    release: Optional[Callable[[], None]] = None
    explain: Optional[Callable[[], str]] = None
    ready: bool = False


# What Transport.start returns. A Gateway a transport made itself is still taken (it is
# how plug-ins written before the IO return reached their interpreter), but no built-in
# transport returns one: it skips make_gateway's own checks of the start.
Started = Union[Command, Connection, TransportIO, "Gateway"]


class Transport(Protocol):
    """A way to reach an interpreter, registered under its spec key.

    `keys` are the other spec keys it reads (an unknown key is a ValueError that names
    every known one). `check` raises ValueError for a spec that cannot work, before
    anything starts. `start` returns one of:

    - a `Command`: make_gateway runs it (locally, or on the via gateway's host with
      ``via=``) with the bootstrap on its stdin/stdout;
    - a `TransportIO` (or a `Connection` around one): a byte stream the transport
      connected itself to a running first stage; make_gateway sends the bootstrap over
      it (socket: a connection past the server's handshake);
    - a `Gateway` it made itself: still accepted from plug-ins written that way, used by
      no built-in transport.
    """

    keys: Tuple[str, ...]

    def check(self, spec: XSpec) -> None: ...

    def start(self, request: StartRequest) -> Started: ...


_lock = threading.Lock()
_loaded: Dict[str, Transport] = {}
_plugins: Optional[Dict[str, str]] = None  # key -> "module:attribute" from entry points


def _import(key: str, value: str) -> Transport:
    module_name, _, attribute = value.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            found = getattr(found, part)
    except Exception as exc:
        raise ValueError(
            f"transport {key!r} ({ENTRY_POINT_GROUP} entry point {value!r}) cannot be "
            f"loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(found, type):
        found = found()  # a class is instantiated once
    if not callable(getattr(found, "start", None)):
        raise ValueError(
            f"transport {key!r} ({value!r}) has no start(request) method: not a transport"
        )
    return found  # type: ignore[no-any-return]


def _entry_points() -> Dict[str, str]:
    global _plugins
    if _plugins is None:
        from importlib import metadata

        if sys.version_info >= (3, 10):
            points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        else:  # 3.8/3.9: a dict of groups
            points = list(metadata.entry_points().get(ENTRY_POINT_GROUP, ()))
        found: Dict[str, str] = {}
        for point in points:
            if point.name not in BUILTIN_TRANSPORTS:  # a plug-in cannot replace a built-in
                found.setdefault(point.name, point.value)
        _plugins = found
    return _plugins


def known_transports() -> Dict[str, str]:
    """Every transport key with its ``module:attribute``: built-in, then plug-ins."""
    with _lock:
        return {**BUILTIN_TRANSPORTS, **_entry_points()}


def is_transport_key(key: str) -> bool:
    """True for a built-in transport's key; else the installed plug-ins are asked."""
    if key in BUILTIN_TRANSPORTS:
        return True
    with _lock:
        return key in _entry_points()


def load_transport(key: str) -> Transport:
    """The transport registered under spec key `key` (KeyError if there is none)."""
    with _lock:
        transport = _loaded.get(key)
        if transport is None:
            value = BUILTIN_TRANSPORTS.get(key) or _entry_points().get(key)
            if value is None:
                raise KeyError(key)
            transport = _loaded[key] = _import(key, value)
        return transport


def sudo_args(spec: XSpec) -> List[str]:
    """``sudo -n -u USER --`` for a spec with ``sudo=USER`` (never prompting), else []."""
    if not spec.sudo:
        return []
    if spec.sudo is True or not str(spec.sudo).strip():
        raise ValueError(f"sudo in gateway spec {str(spec)!r} needs a user: sudo=USER")
    return ["sudo", "-n", "-u", str(spec.sudo), "--"]


def sudo_failure(spec: XSpec, stderr: str) -> Optional[str]:
    """What sudo said when it refused (a password required, no such user), else None."""
    if not spec.sudo:
        return None
    for raw in stderr.splitlines():
        line = raw.strip()
        if line.startswith("sudo:"):
            if "password is required" in line:
                return (
                    f"sudo -n -u {spec.sudo} needs a password here (sudo= never prompts): {line!r}"
                )
            return f"sudo -n -u {spec.sudo} refused: {line!r}"
    return None
