"""The ssh transport: its spec keys, shared connections, and errors that tell causes apart.

``ssh=ARGS`` runs ``ssh -C [-F cfg] -o BatchMode=yes -o ConnectTimeout=30 [our options]
ARGS <remote command>``. Batch mode is always on: ssh never asks for a password or a
passphrase, so a host that wants one fails at once.

Shared connections: gateways of one process to the same destination (the same ssh
options) share one ssh connection through OpenSSH's multiplexing. The first gateway's
own ssh is the master (``ControlMaster=yes``, ``ControlPersist``): it authenticates,
listens on its control socket, moves the connection to a background process of its
own (its stdio on /dev/null) and goes on as that gateway's session over it, so the
first gateway pays for no extra ssh process and its session overlaps what is left of
the master's start. Gateways made side by side wait for the control socket to appear
rather than each opening a connection of their own (if the first one fails, they go on
with connections of their own, side by side); every later gateway's ssh is a session
over the control socket (``ControlMaster=no``), which lives in a private directory
(mode 0700, made by ``tempfile.mkdtemp``) of this process. A master that cannot start
(a refused key, no such host) fails that gateway with ssh's own words. When the last
gateway using it ends, the master is told to exit (``ssh -O exit``) and, once no share
is left, the directory is removed (also at interpreter exit). ``ssh_share=no`` gives a
gateway its own connection.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

from ._errors import (
    BootstrapError,
    HostKeyMismatch,
    HostNotFound,
    RemotePythonMissing,
    SshAuthenticationError,
    SshError,
    SshTimeout,
)
from ._transports import Command, StartRequest, sudo_failure
from ._xspec import SSH_KEYS, XSpec

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["DEFAULT_SSH_TIMEOUT", "SSH", "classify_ssh_failure", "ssh_args", "ssh_options"]

DEFAULT_SSH_TIMEOUT = 30
STRICT_VALUES = ("yes", "no", "accept-new")
# How long a master outlives its last session if nobody tells it to exit (this process
# was killed): a safety net, not the normal end.
CONTROL_PERSIST = 60
# How often a gateway waiting for another's master looks for its control socket (ssh
# tells nobody when it is there; the first session ends the wait at once if it fails).
_SOCKET_POLL = 0.005
# A unix socket's path holds 107 bytes; ssh binds a temporary name 17 bytes longer first.
_MAX_CONTROL_PATH = 90

# ssh's own words, by cause, the plainest first: the first line holding the first
# of them that occurs is quoted in the error (not the "@ WARNING ... @" banner).
_AUTH = ("permission denied", "too many authentication failures", "no more authentication")
_HOST_KEY = (
    "host key verification failed",
    "no matching host key",
    "host key for",
    "remote host identification has changed",
)
_TIMEOUT = ("timed out", "timeout")
_UNREACHABLE = (
    "could not resolve hostname",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "connection refused",
    "no route to host",
    "network is unreachable",
    "connection closed by",
    "connection reset by",
)
_NO_PYTHON = ("command not found", "not found", "no such file or directory")


def _flag(spec: XSpec, key: str, default: bool) -> bool:
    value = getattr(spec, key)
    if value is None:
        return default
    if value is True or str(value).lower() in ("yes", "true", "1", "on"):
        return True
    if str(value).lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"{key}={value!r} in gateway spec {str(spec)!r}: expected yes or no")


def _check_value(spec: XSpec, key: str) -> str:
    value = getattr(spec, key)
    if value is True or not str(value).strip():
        raise ValueError(f"{key} in gateway spec {str(spec)!r} needs a value: {key}=...")
    return str(value)


def _check_port(spec: XSpec, key: str, text: str) -> None:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(
            f"{key}= in gateway spec {str(spec)!r}: port {text!r} is not a number 1-65535"
        )


def check_ssh_spec(spec: XSpec) -> None:
    """ValueError for ssh keys that cannot work, before anything starts."""
    destination = shlex.split(str(spec.ssh)) if spec.ssh is not True else []
    if not destination:
        raise ValueError(f"ssh= needs a host in gateway spec {str(spec)!r}")
    if spec.ssh_port is not None:
        _check_port(spec, "ssh_port", _check_value(spec, "ssh_port"))
    if spec.ssh_identity is not None:
        _check_value(spec, "ssh_identity")
    if spec.ssh_config is not None:
        _check_value(spec, "ssh_config")
    if spec.ssh_jump is not None:
        for hop in _check_value(spec, "ssh_jump").split(","):
            host = hop.rpartition("@")[2]
            name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
            if not name or any(c.isspace() for c in hop) or hop.startswith("-"):
                raise ValueError(
                    f"ssh_jump= in gateway spec {str(spec)!r}: {hop!r} is not "
                    "[user@]host[:port] (a chain is written host1,user@host2:2222)"
                )
            if colon:
                _check_port(spec, "ssh_jump", port)
    if spec.ssh_timeout is not None:
        text = _check_value(spec, "ssh_timeout")
        if not text.isdigit() or int(text) < 1:
            raise ValueError(
                f"ssh_timeout={text!r} in gateway spec {str(spec)!r}: expected whole "
                "seconds, at least 1"
            )
    if spec.ssh_strict is not None and spec.ssh_strict not in STRICT_VALUES:
        raise ValueError(
            f"ssh_strict={spec.ssh_strict!r} in gateway spec {str(spec)!r}: expected one "
            f"of {', '.join(STRICT_VALUES)}"
        )
    _flag(spec, "ssh_share", True)
    if spec.sudo is True:
        raise ValueError(f"sudo in gateway spec {str(spec)!r} needs a user: sudo=USER")


def ssh_options(spec: XSpec) -> List[str]:
    """Our options, between ``ssh -C [-F cfg]`` and the ssh= value (theirs come first
    for ``-o``: ssh keeps the first value it sees of an option)."""
    timeout = spec.ssh_timeout if spec.ssh_timeout is not None else DEFAULT_SSH_TIMEOUT
    args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={timeout}"]
    if spec.ssh_port is not None:
        args += ["-p", str(spec.ssh_port)]
    if spec.ssh_identity is not None:
        args += ["-i", str(spec.ssh_identity), "-o", "IdentitiesOnly=yes"]
    if spec.ssh_jump is not None:
        args += ["-J", str(spec.ssh_jump)]
    if spec.ssh_strict is not None:
        args += ["-o", f"StrictHostKeyChecking={spec.ssh_strict}"]
    return args


def ssh_args(
    spec: XSpec, command: str, control_path: Optional[str] = None, master: bool = False
) -> List[str]:
    """``ssh -C [-F cfg] <our options> [control options] <ssh= split> <command>``: with a
    control path, a session over the running master's connection, or (`master`) the
    master itself, which stays in the background after this session."""
    args = ["ssh", "-C", *_config_args(spec), *ssh_options(spec)]
    if control_path is not None and master:
        args += ["-o", "ControlMaster=yes", "-o", f"ControlPersist={CONTROL_PERSIST}"]
        args += ["-o", f"ControlPath={control_path}"]
    elif control_path is not None:
        args += ["-o", "ControlMaster=no", "-o", f"ControlPath={control_path}"]
    return [*args, *_destination(spec), command]


def _config_args(spec: XSpec) -> List[str]:
    return ["-F", str(spec.ssh_config)] if spec.ssh_config else []


def _destination(spec: XSpec) -> List[str]:
    destination = shlex.split(str(spec.ssh)) if spec.ssh is not True else []
    if not destination:
        raise ValueError(f"ssh= needs a host in gateway spec {str(spec)!r}")
    return destination


class _Shares:
    """The control sockets of this process, counted by the gateways that use them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._directory: Optional[str] = None
        self._users: Dict[str, int] = {}
        self._exit_args: Dict[str, List[str]] = {}
        # per path: the start of the gateway whose ssh is becoming the master; set when
        # that gateway is released (its start failed, or it ended)
        self._leading: Dict[str, threading.Event] = {}
        # destination -> the control path its gateways use now. A master whose last
        # gateway ended is being stopped: a later gateway gets a new path (a new master)
        # rather than a session over one that is going away.
        self._current: Dict[str, str] = {}
        self._masters = 0

    @property
    def directory(self) -> Optional[str]:
        """The private control directory while a share exists, else None."""
        return self._directory

    def acquire(self, spec: XSpec) -> Optional[Tuple[str, bool]]:
        """The control path for the spec's destination, counted once more, and whether
        this gateway's ssh is to be the master (no master runs and nobody is starting
        one); gateways made while another's ssh becomes the master wait for its control
        socket. None when waiting took longer than a connection may (its own ssh then).
        """
        where = [*_config_args(spec), *ssh_options(spec), *_destination(spec)]
        name = hashlib.sha256("\0".join(where).encode()).hexdigest()[:20]
        with self._lock:
            if self._directory is None:
                self._directory = tempfile.mkdtemp(prefix="execnet-ssh-")  # mode 0700
                os.chmod(self._directory, 0o700)
            path = self._current.get(name, "")
            if not path:
                self._masters += 1
                path = os.path.join(self._directory, f"{name}-{self._masters}")
                if len(path) > _MAX_CONTROL_PATH:  # ssh could not bind it: no sharing
                    return None
                self._current[name] = path
            self._users[path] = self._users.get(path, 0) + 1
            self._exit_args[path] = ["ssh", "-o", f"ControlPath={path}", "-O", "exit", *where]
        deadline = time.monotonic() + int(spec.ssh_timeout or DEFAULT_SSH_TIMEOUT) + 30
        while True:
            with self._lock:
                if os.path.exists(path):
                    return path, False
                leading = self._leading.get(path)
                if leading is None:
                    self._leading[path] = threading.Event()
                    return path, True
            # Another gateway's ssh is becoming the master: its socket appears once it
            # authenticated. If that start fails, its release wakes us: we go on with
            # connections of our own, side by side (each ssh then says why it fails,
            # or works), not one master attempt after another.
            failed = leading.wait(_SOCKET_POLL)
            if (failed and not os.path.exists(path)) or time.monotonic() > deadline:
                self.release(path, leader=False)
                return None

    def release(self, path: str, leader: bool = False) -> None:
        """One user less (`leader`: the one whose ssh was to be the master, whose
        waiters may go on now); the last one stops the master and, if it was the last
        share, removes the directory."""
        with self._lock:
            if leader:
                leading = self._leading.pop(path, None)
                if leading is not None:
                    leading.set()
            count = self._users.get(path, 0) - 1
            if count > 0:
                self._users[path] = count
                return
            self._users.pop(path, None)
            self._current.pop(os.path.basename(path).rpartition("-")[0], None)
            exit_args = self._exit_args.pop(path, None)
            directory = self._directory if not self._users else None
            if directory is not None:
                self._directory = None
        if exit_args is not None and os.path.exists(path):
            _stop_master(exit_args)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def release_all(self) -> None:
        """Stop every master and remove the directory (at interpreter exit)."""
        with self._lock:
            masters = list(self._exit_args.items())
            self._users.clear()
            self._exit_args.clear()
            self._current.clear()
            directory, self._directory = self._directory, None
        for path, exit_args in masters:
            if os.path.exists(path):
                _stop_master(exit_args)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _stop_master(exit_args: List[str]) -> None:
    # If the master is gone already (or ssh is), ControlPersist has ended it or will.
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            exit_args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )


shares = _Shares()
atexit.register(shares.release_all)


def _first_line(stderr: str, words: tuple[str, ...]) -> Optional[str]:
    lines = stderr.splitlines()
    for word in words:
        for line in lines:
            if word in line.lower():
                return line.strip()
    return None


def classify_ssh_failure(
    spec: XSpec, reason: str, stderr: str, status: Optional[int]
) -> BootstrapError:
    """The error that says why ssh (or vagrant ssh) ended before the bootstrap finished,
    quoting ssh's own line."""
    line = _first_line(stderr, _HOST_KEY)
    if line is not None:
        return HostKeyMismatch(spec, f"host key mismatch: {line!r}; {reason}", stderr, status)
    line = _first_line(stderr, _AUTH)
    if line is not None:
        return SshAuthenticationError(
            spec,
            f"authentication refused: {line!r} (ssh runs in batch mode: it never asks for "
            f"a password or passphrase); {reason}",
            stderr,
            status,
        )
    if status == 255:
        line = _first_line(stderr, _TIMEOUT)
        if line is not None:
            return SshTimeout(spec, f"ssh timed out: {line!r}; {reason}", stderr, status)
        line = _first_line(stderr, _UNREACHABLE)
        if line is not None or not stderr.strip():
            quoted = f": {line!r}" if line else ""
            return HostNotFound(
                spec, f"ssh could not reach the host{quoted}; {reason}", stderr, status
            )
    sudo = sudo_failure(spec, stderr)
    if sudo is not None:
        return SshError(spec, f"{sudo}; {reason}", stderr, status)
    line = _first_line(stderr, _NO_PYTHON)
    if status in (126, 127) or (line is not None and "python" in stderr.lower()):
        quoted = f": {line!r}" if line else ""
        return RemotePythonMissing(
            spec, f"the remote python did not start{quoted}; {reason}", stderr, status
        )
    return SshError(spec, reason, stderr, status)


# How ssh names the peer of a connection made through a ProxyJump/ProxyCommand.
_THROUGH_A_PROXY = "unknown port 65535"


def classify_master_failure(
    spec: XSpec, reason: str, stderr: str, status: Optional[int]
) -> BootstrapError:
    """classify_ssh_failure for the gateway whose ssh was to be the shared master: with
    ``ControlPersist`` ssh sends a jump host's own stderr to /dev/null, so a connection
    a jump host ended says where its words are."""
    error = classify_ssh_failure(spec, reason, stderr, status)
    if type(error) is HostNotFound and _THROUGH_A_PROXY in stderr.lower():
        hint = (
            " (through a jump host, which ended the connection; ssh drops the jump "
            "host's own words for a shared connection: ssh_share=no shows them)"
        )
        return HostNotFound(spec, error.reason + hint, stderr, status)
    return error


class SshTransport:
    """``ssh=ARGS``: a python on another host, through OpenSSH."""

    keys = ("ssh_config", *SSH_KEYS, "sudo")

    def check(self, spec: XSpec) -> None:
        check_ssh_spec(spec)

    def start(self, request: StartRequest) -> Union[Command, Gateway]:
        spec = request.spec
        # A via host runs the command: a control path here means nothing there.
        share = _flag(spec, "ssh_share", True) and request.via is None
        shared = shares.acquire(spec) if share else None
        path, master = shared if shared is not None else (None, False)
        release: Optional[Callable[[], None]] = None
        if path is not None:
            release = _releaser(path, master)
        try:
            command = request.remote_command()
        except BaseException:
            if release is not None:  # waiters go on, the count stays right
                release()
            raise
        return Command(
            ssh_args(spec, command, path, master),
            remoteaddress=str(spec.ssh),
            cache_key=tuple(ssh_args(spec, command)),  # the same with or without a share
            release=release,
            classify=classify_master_failure if master else classify_ssh_failure,
        )


def _releaser(path: str, leader: bool) -> Callable[[], None]:
    done = threading.Lock()

    def release() -> None:
        if done.acquire(blocking=False):  # once, whoever calls first
            shares.release(path, leader)

    return release


SSH = SshTransport()
