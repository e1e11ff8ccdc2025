"""make_gateway: start (or reach) an interpreter for a spec and return its Gateway."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from execnet_channel import ExecModel, get_execmodel, trace

from . import _bootstrap
from ._errors import BootstrapError
from ._fd_table import grow_fd_table
from ._forwarding import forwarding_of
from ._gateway import Gateway
from ._imports import imports_of
from ._max_frame import max_frame_of
from ._own_code import own_entry
from ._process import ChildProcess, ProcessIO, describe_status
from ._transports import (
    BUILTIN_TRANSPORTS,
    Command,
    Connection,
    StartRequest,
    Transport,
    TransportIO,
    is_transport_key,
    known_transports,
    load_transport,
)
from ._via import VIA_PROXY, ViaIO
from ._xspec import COMMON_KEYS, KNOWN_KEYS, XSpec

__all__ = [
    "BOOTSTRAP_TIMEOUT",
    "bootstrap_child",
    "bootstrap_over",
    "gateway_over",
    "handshake",
    "make_gateway",
    "process_gateway",
]

# How long a started interpreter may take to answer the bootstrap (slow ssh logins).
BOOTSTRAP_TIMEOUT = 60.0
# After a failed start: how long the ended (or killed) child gets to be reaped, and its
# last stderr bytes to arrive (the tee thread copies them), for the error's post-mortem.
_REAP_WAIT = 10.0
_STDERR_WAIT = 2.0
# What a BootstrapError quotes of what a child printed on stdout instead of answering.
_NOISE_QUOTED = 2000
EXECMODELS = ("thread", "main_thread_only", "eventlet", "gevent")


def gateway_type(spec: XSpec) -> str:
    """The one transport key the spec names: popen, ssh, socket, ..., or a plug-in's."""
    types = [
        key
        for key in spec._keys()
        if key in BUILTIN_TRANSPORTS or (key not in KNOWN_KEYS and is_transport_key(key))
    ]
    if len(types) != 1:
        what = "no gateway type" if not types else f"several gateway types ({', '.join(types)})"
        raise ValueError(
            f"gateway spec {str(spec)!r} has {what}: give one of popen, ssh=HOST, "
            "socket=HOST:PORT, vagrant_ssh=MACHINE, docker=CONTAINER, podman=CONTAINER, "
            f"kubectl=POD; transports known here: {', '.join(known_transports())}"
        )
    return types[0]


def _check_keys(spec: XSpec, kind: str, transport: Transport) -> None:
    """ValueError for a key the chosen transport does not read, naming who reads it, or
    (an unknown key) every key known here, plug-ins' included."""
    allowed = {kind, *COMMON_KEYS, *transport.keys}
    for key in spec._keys():
        if key in allowed:
            continue
        readers = _readers(key, BUILTIN_TRANSPORTS) or _readers(key, known_transports())
        if readers:
            raise ValueError(
                f"{key}= in gateway spec {str(spec)!r} only works with {' or '.join(readers)}"
            )
        known = set(COMMON_KEYS)
        for name in known_transports():
            known.add(name)
            with contextlib.suppress(ValueError):  # a broken plug-in: named all the same
                known.update(load_transport(name).keys)
        raise ValueError(
            f"unknown key {key!r} in gateway spec {str(spec)!r}; the keys known here are: "
            f"{', '.join(sorted(known))}"
        )


def _readers(key: str, names: Iterable[str]) -> List[str]:
    found = []
    for name in names:
        with contextlib.suppress(ValueError):
            if key in load_transport(name).keys:
                found.append(name)
    return found


def _validate(spec: XSpec, via: Optional[Gateway], installvia: Optional[Gateway]) -> Transport:
    kind = gateway_type(spec)
    transport = load_transport(kind)
    if not spec.id or spec.id is True:
        raise ValueError(f"gateway spec {str(spec)!r} has no id (the group gives one)")
    if spec.nice is not None:
        try:
            int(spec.nice)
        except (TypeError, ValueError):
            raise ValueError(
                f"nice={spec.nice!r} in gateway spec {str(spec)!r} is not an integer"
            ) from None
    if spec.chdir is True:
        raise ValueError(f"chdir in gateway spec {str(spec)!r} needs a directory: chdir=PATH")
    if spec.execmodel is not None and spec.execmodel not in EXECMODELS:
        raise ValueError(
            f"execmodel={spec.execmodel!r} in gateway spec {str(spec)!r}: "
            f"expected one of {', '.join(EXECMODELS)}"
        )
    if spec.via and via is None:
        raise ValueError(
            f"via={spec.via} in gateway spec {str(spec)!r} was not resolved to a gateway"
        )
    if spec.installvia and installvia is None:
        raise ValueError(
            f"installvia={spec.installvia} in gateway spec {str(spec)!r} "
            "was not resolved to a gateway"
        )
    max_frame_of(spec)  # a bad max_frame= fails here, before anything starts
    forwarding_of(spec)  # and a bad forward_output=/forward_logging= (or variable)
    imports_of(spec)  # and a bad imports= too
    if installvia is not None and kind != "socket":
        raise ValueError(f"installvia= in gateway spec {str(spec)!r} only works with socket")
    _check_keys(spec, kind, transport)
    transport.check(spec)
    return transport


def make_gateway(
    spec: Union[XSpec, str],
    *,
    execmodel: Union[str, ExecModel] = "thread",
    via: Optional[Gateway] = None,
    installvia: Optional[Gateway] = None,
    group: Any = None,
) -> Gateway:
    """Start or reach the interpreter `spec` names and return its Gateway.

    `execmodel` is the local model; the remote runs `spec.execmodel` (default thread).
    The spec's id must be set (a Group does that, resolves via=/installvia= ids, and
    passes itself as `group` for the transport):

        >>> import os
        >>> gw = make_gateway(XSpec("popen//id=gw0"))
        >>> gw.remote_exec("import os; channel.send(os.getpid())").receive() != os.getpid()
        True
        >>> gw.exit()

    The transport is the one registered under the spec's transport key (built in, or a
    plug-in's entry point in ``execnet.transports``). It returns a Command, started here
    (or on the via gateway's host) with the bootstrap on its stdio, or a stream it
    connected itself (a TransportIO or a Connection: socket), over which the bootstrap
    goes (`bootstrap_over`). Raises ValueError for a bad spec
    (an unknown key names the known ones) before anything starts; for ssh, HostNotFound
    when the host cannot be resolved or reached, SshTimeout when it did not answer in
    time, SshAuthenticationError, HostKeyMismatch, RemotePythonMissing, each quoting
    ssh's line; BootstrapError (naming the spec, with the remote's stderr) otherwise.
    """
    if isinstance(spec, str):
        spec = XSpec(spec)
    transport = _validate(spec, via, installvia)
    grow_fd_table()
    model = get_execmodel(execmodel)
    request = StartRequest(
        spec=spec,
        stage=_bootstrap.first_stage("stdio"),
        group=group,
        execmodel=model,
        via=via,
        installvia=installvia,
        timeout=BOOTSTRAP_TIMEOUT,
    )
    started = transport.start(request)
    if isinstance(started, Command):
        return _command_gateway(spec, model, via, started)
    if isinstance(started, Gateway):  # a plug-in that made its own (no built-in does)
        return started
    if isinstance(started, TransportIO):
        started = Connection(started)
    if not isinstance(started, Connection):
        raise TypeError(
            f"transport {gateway_type(spec)!r} returned {type(started).__name__}: "
            "expected a Command, a TransportIO or a Connection"
        )
    return _connection_gateway(spec, via, started, request.timeout)


def _command_gateway(
    spec: XSpec, model: ExecModel, via: Optional[Gateway], command: Command
) -> Gateway:
    if via is not None:
        return _released(lambda: _via_gateway(spec, model, via, command), command.release)
    return _released(lambda: process_gateway(spec, model, command), command.release)


def _connection_gateway(
    spec: XSpec, via: Optional[Gateway], connection: Connection, timeout: float
) -> Gateway:
    io = connection.io

    def start() -> Gateway:
        try:
            if not connection.ready:
                bootstrap_over(spec, connection, timeout)
            return Gateway(
                io,
                spec,
                child=connection.child,
                via=via,
                remoteaddress=connection.remoteaddress,
                lost_connection=connection.lost_connection,
            )
        except BaseException:
            io.kill()
            io.close_write()
            io.close_read()
            if connection.child is not None:
                connection.child.wait(_REAP_WAIT)  # killed (or ended by itself): reaped
            raise

    return _released(start, connection.release)


def _released(start: Callable[[], Gateway], release: Optional[Callable[[], None]]) -> Gateway:
    """`start()`'s gateway, `release` called once it ends (at once if the start failed)."""
    try:
        gateway = start()
    except BaseException:
        if release is not None:
            release()
        raise
    if release is not None:
        gateway._on_end(release)
    return gateway


def bootstrap_over(spec: XSpec, connection: Connection, timeout: float) -> None:
    """Send the bootstrap frame over a transport's stream to its running first stage and
    read through the marker (see `TransportIO`); BootstrapError says why it failed.

    The stream has `timeout` seconds in all: then it is cut (``kill``, ``close_read``,
    ``close_write``), which wakes the read.
    """
    io = connection.io
    where = connection.remoteaddress or "the remote"
    marker = _bootstrap.new_marker()
    frame = _bootstrap.frame(_bootstrap.make_config(spec, marker), with_bundle=True)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        for close in (io.kill, io.close_read, io.close_write):
            with contextlib.suppress(OSError):
                close()

    def read_some(numbytes: int) -> bytes:
        buffer = bytearray(numbytes)
        try:
            count = io.readinto(memoryview(buffer))
        except EOFError:
            return b""
        return bytes(buffer[:count])

    def failure(reason: str, noise: bytes = b"") -> BootstrapError:
        said = connection.explain() if connection.explain is not None else ""
        if said:
            reason = f"{reason}; {said}"
        tail = noise.decode("utf-8", "replace")[-_NOISE_QUOTED:] if noise.strip() else ""
        return BootstrapError(spec, reason, tail)

    def timed_out() -> BootstrapError:
        return failure(f"no answer to the bootstrap from {where} within {timeout:.0f} s")

    watchdog = threading.Timer(timeout, cut)
    watchdog.name = f"execnet bootstrap deadline {spec.id}"
    watchdog.daemon = True
    watchdog.start()
    try:
        with contextlib.suppress(OSError):  # gone already: the read says how
            io.writev([frame])
        try:
            noise = _bootstrap.read_until_marker(read_some, marker)
        except EOFError as exc:
            if expired.is_set():
                raise timed_out() from None
            noise = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b""
            raise failure(
                f"{where} ended the stream before the bootstrap finished", noise
            ) from None
    finally:
        watchdog.cancel()
    if expired.is_set():  # just too late: the stream is cut already
        raise timed_out()
    if noise:
        trace(f"gateway {spec.id}: dropped {len(noise)} bytes of noise: {noise[:200]!r}")


def bootstrap_child(
    spec: XSpec,
    command: Command,
    *,
    extra: Optional[Dict[str, Any]] = None,
    pass_fds: Tuple[int, ...] = (),
) -> ChildProcess:
    """Start `command` (a first stage command line), send it the bootstrap frame and read
    through its marker: the child is then ready. `extra` adds to the config (a fork
    server's settings), `pass_fds` are more descriptors the child inherits;
    BootstrapError says why a child failed."""
    args, same = command.args, command.same_interpreter
    trace(f"gateway {spec.id}: starting {args[:-1]} -c <first stage> (bundle: {not same})")
    try:
        child = ChildProcess(args, command.env, pass_fds=pass_fds)
    except FileNotFoundError:
        raise BootstrapError(
            spec, f"cannot start {args[0]!r}: it is not installed here (not found on PATH)"
        ) from None
    except OSError as exc:
        raise BootstrapError(spec, f"cannot start {args[0]!r}: {exc.strerror or exc}") from None
    try:
        # Everything up to the write overlaps the child's interpreter start.
        deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
        marker = _bootstrap.new_marker()
        key = command.cache_key or tuple(args)
        config = _bootstrap.make_config(spec, marker, same_interpreter=same, command=key)
        config.update(extra or {})
        own = b""
        if same:  # imports the installed packages, with the code objects from here
            entry = own_entry()
            if entry is not None:
                config["own"], own = entry
        # A BrokenPipeError means it ended already: its stdout's end and stderr tell why.
        try:
            child.write_all(_bootstrap.frame(config, not same), deadline)
            if own:
                child.write_all(own, deadline)
        except BrokenPipeError:
            pass
        except TimeoutError:
            raise BootstrapError(
                spec,
                f"the child did not read its bootstrap within {BOOTSTRAP_TIMEOUT:.0f} s",
                child.stderr_tail(),
            ) from None

        def read_some(numbytes: int) -> bytes:
            return child.read_some(numbytes, deadline)

        handshake(spec, read_some, marker, child, command)
        if config.get("want_code"):
            try:
                _bootstrap.read_code_answer(key, read_some)
            except (EOFError, TimeoutError) as exc:
                raise BootstrapError(
                    spec,
                    f"the remote's ready answer broke off ({exc})",
                    child.stderr_tail(_STDERR_WAIT),
                ) from None
    except BaseException:
        child.kill()
        child.close_fds()
        child.wait(_REAP_WAIT)
        raise
    return child


def process_gateway(spec: XSpec, model: ExecModel, command: Command) -> Gateway:
    """Start `command` as a local child and return the Gateway over its pipes."""
    child = bootstrap_child(spec, command)
    return gateway_over(ProcessIO(child, model), spec, command.remoteaddress)


def gateway_over(io: ProcessIO, spec: XSpec, remoteaddress: Optional[str]) -> Gateway:
    """The Gateway over a ready local child's IO (which owns the pipe ends from here on)."""
    try:
        return Gateway(io, spec, child=io.child, remoteaddress=remoteaddress)
    except BaseException:
        io.child.kill()
        io.close_write()
        io.close_read()
        raise


def handshake(
    spec: XSpec,
    read_some: Callable[[int], bytes],
    marker: bytes,
    child: Optional[Any],
    command: Command,
) -> None:
    """Read through the marker; turn an early end into the error that explains it."""
    try:
        noise = _bootstrap.read_until_marker(read_some, marker)
        if noise:
            trace(f"gateway {spec.id}: dropped {len(noise)} bytes of noise: {noise[:200]!r}")
    except TimeoutError:
        tail = child.stderr_tail() if child is not None else ""
        raise BootstrapError(
            spec, f"no answer to the bootstrap within {BOOTSTRAP_TIMEOUT:.0f} s", tail
        ) from None
    except EOFError as exc:
        noise = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b""
        status = child.wait(_REAP_WAIT) if child is not None else None
        tail = child.stderr_tail(_STDERR_WAIT) if child is not None else ""
        if noise.strip() and not tail.strip():
            tail = noise.decode("utf-8", "replace")[-_NOISE_QUOTED:]
        reason = f"the remote ended before the bootstrap finished ({describe_status(status)})"
        if command.classify is not None:
            raise command.classify(spec, reason, tail, status) from None
        raise BootstrapError(spec, reason, tail, status) from None


def _via_gateway(spec: XSpec, model: ExecModel, via: Gateway, command: Command) -> Gateway:
    channel = via.remote_exec(VIA_PROXY)
    io = ViaIO(channel, model)
    try:
        channel.send((command.args, command.python_at))
        marker = _bootstrap.new_marker()
        config = _bootstrap.make_config(spec, marker)
        io.write(_bootstrap.frame(config, with_bundle=True))
        deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
        try:
            _bootstrap.read_until_marker(lambda n: io.read_some(n, deadline), marker)
        except TimeoutError:
            raise BootstrapError(
                spec,
                f"no answer to the bootstrap within {BOOTSTRAP_TIMEOUT:.0f} s",
                io.stderr_tail(),
            ) from None
        except EOFError:
            io.wait(_REAP_WAIT)
            reason = (
                f"the child started via {via.id!r} ended before the bootstrap finished "
                f"({io.describe_end()})"
            )
            if command.classify is not None and io.status is not None:
                raise command.classify(spec, reason, io.stderr_tail(), io.status) from None
            raise BootstrapError(spec, reason, io.stderr_tail(), io.status) from None
        return Gateway(io, spec, child=io, via=via, remoteaddress=command.remoteaddress)
    except BaseException:
        io.kill()
        io.close_write()
        raise
