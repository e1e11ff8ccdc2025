"""make_gateway: start (or reach) an interpreter for a spec and return its Gateway."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from execnet_channel import ExecModel, get_execmodel, trace

from . import _bootstrap
from ._commands import is_this_interpreter, popen_args, python_args, ssh_args, vagrant_args
from ._errors import BootstrapError, HostNotFound, SshError
from ._forkserver import fork_gateway, fork_wanted, report_fallback
from ._forwarding import forwarding_of
from ._gateway import Gateway
from ._imports import imports_of
from ._max_frame import max_frame_of
from ._own_code import own_entry
from ._process import ChildProcess, ProcessIO, describe_status
from ._via import VIA_PROXY, ViaIO
from ._xspec import GATEWAY_TYPES, SOCKET_KEYS, XSpec

__all__ = [
    "BOOTSTRAP_TIMEOUT",
    "bootstrap_child",
    "gateway_over",
    "handshake",
    "make_gateway",
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

# ssh's own words when the host cannot be resolved or reached (exit status 255).
_UNREACHABLE = (
    "could not resolve hostname",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "connection refused",
    "no route to host",
    "connection timed out",
    "operation timed out",
    "network is unreachable",
)
# ... and when it reached the host but could not get in.
_REFUSED = ("permission denied", "host key verification failed", "too many authentication")


def gateway_type(spec: XSpec) -> str:
    """The one gateway type the spec names: popen, ssh, socket or vagrant_ssh."""
    types = [name for name in GATEWAY_TYPES if getattr(spec, name)]
    if len(types) != 1:
        what = "no gateway type" if not types else f"several gateway types ({', '.join(types)})"
        raise ValueError(
            f"gateway spec {str(spec)!r} has {what}: give one of popen, ssh=HOST, "
            "socket=HOST:PORT, vagrant_ssh=MACHINE"
        )
    return types[0]


def _validate(spec: XSpec, via: Optional[Gateway], installvia: Optional[Gateway]) -> str:
    kind = gateway_type(spec)
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
    if spec.fork is not None:
        if spec.fork is not True:
            raise ValueError(f"fork in gateway spec {str(spec)!r} takes no value: popen//fork")
        if kind != "popen" or spec.via:
            raise ValueError(
                f"fork in gateway spec {str(spec)!r} only works with a local popen gateway"
            )
    forwarding_of(spec)  # and a bad forward_output=/forward_logging= (or variable)
    imports_of(spec)  # and a bad imports= too
    if installvia is not None and kind != "socket":
        raise ValueError(f"installvia= in gateway spec {str(spec)!r} only works with socket")
    if kind == "socket" or any(getattr(spec, key) for key in SOCKET_KEYS):
        from ._socket import validate_socket_keys

        validate_socket_keys(spec, kind, installvia)
    if via is not None and kind == "socket":
        raise ValueError(f"via= in gateway spec {str(spec)!r} does not work with socket")
    return kind


def make_gateway(
    spec: Union[XSpec, str],
    *,
    execmodel: Union[str, ExecModel] = "thread",
    via: Optional[Gateway] = None,
    installvia: Optional[Gateway] = None,
) -> Gateway:
    """Start or reach the interpreter `spec` names and return its Gateway.

    `execmodel` is the local model; the remote runs `spec.execmodel` (default thread).
    The spec's id must be set (a Group does that, and resolves via=/installvia= ids):

        >>> import os
        >>> gw = make_gateway(XSpec("popen//id=gw0"))
        >>> gw.remote_exec("import os; channel.send(os.getpid())").receive() != os.getpid()
        True
        >>> gw.exit()

    Raises ValueError for a bad spec before anything starts, HostNotFound when ssh cannot
    reach the host, SshError when ssh reached it but could not start python there, and
    BootstrapError (naming the spec, with the remote's stderr) for any other failure.
    """
    if isinstance(spec, str):
        spec = XSpec(spec)
    kind = _validate(spec, via, installvia)
    model = get_execmodel(execmodel)
    if kind == "socket":
        from ._socket import socket_gateway

        return socket_gateway(spec, model, installvia, BOOTSTRAP_TIMEOUT)
    stage = _bootstrap.first_stage("stdio")
    if kind == "popen":
        args = popen_args(spec, stage)
        same = via is None and is_this_interpreter(python_args(spec))
        remoteaddress = None
        if via is None and fork_wanted(spec):
            forked = fork_gateway(spec, model, args[:-2], same=same, timeout=BOOTSTRAP_TIMEOUT)
            if not isinstance(forked, str):
                return forked
            gateway = _process_gateway(spec, model, args, same=same, kind=kind, remoteaddress=None)
            if forked:
                report_fallback(forked, spec)
            return gateway
    elif kind == "ssh":
        args, same, remoteaddress = ssh_args(spec, stage), False, str(spec.ssh)
    else:
        args, same, remoteaddress = vagrant_args(spec, stage), False, str(spec.vagrant_ssh)
    if via is not None:
        return _via_gateway(spec, model, via, args, kind)
    return _process_gateway(spec, model, args, same=same, kind=kind, remoteaddress=remoteaddress)


def bootstrap_child(
    spec: XSpec,
    args: List[str],
    *,
    same: bool,
    kind: str,
    extra: Optional[Dict[str, Any]] = None,
    pass_fds: Tuple[int, ...] = (),
) -> ChildProcess:
    """Start `args` (a first stage command line), send it the bootstrap frame and read
    through its marker: the child is then ready. `extra` adds to the config (a fork
    server's settings), `pass_fds` are more descriptors the child inherits;
    BootstrapError says why a child failed."""
    trace(f"gateway {spec.id}: starting {args[:-1]} -c <first stage> (bundle: {not same})")
    try:
        child = ChildProcess(args, pass_fds=pass_fds)
    except OSError as exc:
        raise BootstrapError(spec, f"cannot start {args[0]!r}: {exc.strerror or exc}") from None
    try:
        # Everything up to the write overlaps the child's interpreter start.
        deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
        marker = _bootstrap.new_marker()
        command = tuple(args)
        config = _bootstrap.make_config(spec, marker, same_interpreter=same, command=command)
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

        handshake(spec, read_some, marker, child, kind)
        if config.get("want_code"):
            try:
                _bootstrap.read_code_answer(command, read_some)
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


def _process_gateway(
    spec: XSpec,
    model: ExecModel,
    args: List[str],
    *,
    same: bool,
    kind: str,
    remoteaddress: Optional[str],
) -> Gateway:
    child = bootstrap_child(spec, args, same=same, kind=kind)
    return gateway_over(ProcessIO(child, model), spec, remoteaddress)


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
    kind: str,
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
        if kind in ("ssh", "vagrant_ssh"):
            raise _ssh_error(spec, reason, tail, status) from None
        raise BootstrapError(spec, reason, tail, status) from None


def _ssh_error(spec: XSpec, reason: str, stderr: str, status: Optional[int]) -> BootstrapError:
    text = stderr.lower()
    refused = any(word in text for word in _REFUSED)
    unreachable = any(word in text for word in _UNREACHABLE) or not text.strip()
    if status == 255 and unreachable and not refused:
        return HostNotFound(spec, f"ssh could not reach the host; {reason}", stderr, status)
    if status == 127 or "not found" in text or "no such file" in text:
        reason = f"the remote python did not start; {reason}"
    return SshError(spec, reason, stderr, status)


def _via_gateway(
    spec: XSpec, model: ExecModel, via: Gateway, args: List[str], kind: str
) -> Gateway:
    default_python = kind == "popen" and not spec.python
    if default_python:
        args = args[1:]  # the via host's own interpreter: sys.executable there
    channel = via.remote_exec(VIA_PROXY)
    io = ViaIO(channel, model)
    try:
        channel.send((args, default_python))
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
            raise BootstrapError(
                spec,
                f"the child started via {via.id!r} ended before the bootstrap finished "
                f"({io.describe_end()})",
                io.stderr_tail(),
                io.status,
            ) from None
        return Gateway(io, spec, child=io, via=via, remoteaddress=None)
    except BaseException:
        io.kill()
        io.close_write()
        raise
