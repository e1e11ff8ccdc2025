"""The built-in transports other than ssh and the containers: popen, vagrant_ssh, socket."""

from __future__ import annotations

import os
from typing import Optional

from ._commands import is_this_interpreter, popen_args, python_args, vagrant_args
from ._errors import BootstrapError
from ._process import ProcessIO
from ._transports import Command, Connection, Started, StartRequest, sudo_args, sudo_failure
from ._xspec import SOCKET_KEYS, XSpec

__all__ = ["FORK_SWITCH", "POPEN", "SOCKET", "VAGRANT_SSH", "classify_local_failure", "fork_wanted"]

# The environment variable that forks every local popen gateway from a fork server.
FORK_SWITCH = "EXECNET_FORK"


def fork_wanted(spec: XSpec) -> bool:
    """True when a popen spec asks for a forked child: the `fork` key or EXECNET_FORK=1.

    Asked at every popen start: the fork server's module is imported only when it is.
    """
    return bool(spec.fork) or os.environ.get(FORK_SWITCH, "").strip() == "1"


def starts_on_this_cpu(spec: XSpec) -> bool:
    """Whether making the gateway of `spec` is work for this machine's CPUs alone: a
    popen child of this very interpreter, or one forked from a fork server (not via=,
    not sudo=; `python=` names a program that may wait on anything, unless it forks).

    Such starts gain nothing from running more of them at once than there are CPUs
    (execnet_group's makegateways limits them so).

    >>> starts_on_this_cpu(XSpec("popen")), starts_on_this_cpu(XSpec("popen//via=gw0"))
    (True, False)
    >>> starts_on_this_cpu(XSpec("popen//python=python3.12//fork"))
    True
    """
    if not spec.popen or spec.via or spec.sudo:
        return False
    return fork_wanted(spec) or not spec.python or spec.python is True


def classify_local_failure(
    spec: XSpec, reason: str, stderr: str, status: Optional[int]
) -> BootstrapError:
    """A local command's early end: sudo's refusal said as such, else BootstrapError."""
    sudo = sudo_failure(spec, stderr)
    if sudo is not None:
        reason = f"{sudo}; {reason}"
    return BootstrapError(spec, reason, stderr, status)


class PopenTransport:
    """``popen``: a child process on this host (``python=`` another interpreter,
    ``sudo=USER`` as another user, ``fork`` forked from a fork server)."""

    keys = ("sudo", "fork")

    def check(self, spec: XSpec) -> None:
        sudo = sudo_args(spec)
        python_args(spec)
        if spec.fork is not None:
            if spec.fork is not True:
                raise ValueError(f"fork in gateway spec {str(spec)!r} takes no value: popen//fork")
            if spec.via or sudo:
                what = "via=" if spec.via else "sudo="
                raise ValueError(
                    f"fork in gateway spec {str(spec)!r} only works with a local popen "
                    f"gateway (not with {what})"
                )

    def start(self, request: StartRequest) -> Started:
        spec = request.spec
        python = python_args(spec)
        default = not spec.python or spec.python is True
        sudo = sudo_args(spec)
        command = Command(
            popen_args(spec, request.stage),
            # the child imports the installed packages: this interpreter, as this user
            same_interpreter=request.via is None and not sudo and is_this_interpreter(python),
            python_at=len(sudo) if default else None,
            classify=classify_local_failure,
        )
        if request.via is not None or sudo or not fork_wanted(spec):
            return command
        from ._forkserver import fork_io, report_fallback

        forked = fork_io(
            spec,
            request.execmodel,
            command.args[:-2],
            same=command.same_interpreter,
            timeout=request.timeout,
        )
        if not isinstance(forked, str):
            return Connection(forked, child=forked.child, ready=True)
        if not forked:  # no report needed: make_gateway starts the plain child
            return command
        from ._connect import bootstrap_child

        child = bootstrap_child(spec, command)
        report_fallback(forked, spec)  # the plain start worked: say why it was not forked
        io = ProcessIO(child, request.execmodel)
        return Connection(io, child=child, ready=True)


class VagrantTransport:
    """``vagrant_ssh=MACHINE``: ``vagrant ssh MACHINE -- <python> -c ...``."""

    keys = ("sudo",)

    def check(self, spec: XSpec) -> None:
        sudo_args(spec)
        if spec.vagrant_ssh is True or not spec.vagrant_ssh:
            raise ValueError(f"vagrant_ssh= needs a machine name in gateway spec {str(spec)!r}")

    def start(self, request: StartRequest) -> Started:
        from ._ssh import classify_ssh_failure  # ssh's words: vagrant ssh runs ssh

        spec = request.spec
        return Command(
            vagrant_args(spec, request.stage),
            remoteaddress=str(spec.vagrant_ssh),
            classify=classify_ssh_failure,
        )


class SocketTransport:
    """``socket=HOST:PORT``: a running socket server (its own handshake, TLS, secrets);
    with ``via=ID`` gateway ID's host makes the connection and relays it."""

    keys = SOCKET_KEYS

    def check(self, spec: XSpec) -> None:
        from ._socket import validate_socket_keys

        validate_socket_keys(spec, "socket", None)
        if spec.via and spec.installvia and spec.via != spec.installvia:
            raise ValueError(
                f"installvia={spec.installvia} with via={spec.via} in gateway spec "
                f"{str(spec)!r}: the server installed through {spec.installvia} listens "
                f"on that host's 127.0.0.1; via= must name the same gateway (or leave it out)"
            )

    def start(self, request: StartRequest) -> Started:
        from ._socket import socket_connection, validate_socket_keys

        validate_socket_keys(request.spec, "socket", request.installvia)
        return socket_connection(
            request.spec,
            request.execmodel,
            via=request.via,
            installvia=request.installvia,
            timeout=request.timeout,
        )


POPEN = PopenTransport()
VAGRANT_SSH = VagrantTransport()
SOCKET = SocketTransport()
