"""popen//fork: popen gateways forked from a fork server, one server per interpreter.

The first fork gateway of an interpreter command line (python=, -B) starts a server: a
fresh interpreter of that command, bootstrapped like any popen child, that has imported
only the travelling packages and holds no thread (its code: _forkserver_remote.py). Each
gateway is then a child forked from it (a spare forked ahead takes the request from the
control socket itself and becomes the child): it takes the caller's cwd, umask and
environment as of the makegateway call, then the spec's env:, nice and chdir, and
speaks the protocol over pipes of its own, whose ends reach the server as SCM_RIGHTS
over the control socket (a socket pair, never bound to a path: no other user, no other
process, can talk to the server). A server is shared by the gateways whose environment
agrees on what shapes an interpreter's start (the PYTHON* variables, the locale,
EXECNET_DEBUG); a caller whose environment differs there gets a server of its own.

The server ends when its last gateway ended (the opener closes the control socket; the
server reaps its children and exits) or with the opener. A server that crashed is
reported (a RuntimeWarning naming it, its exit status and last stderr lines) and that
gateway starts as a plain popen child; the next fork gateway starts a new server.
"""

from __future__ import annotations

import _socket
import array
import atexit
import contextlib
import errno
import marshal
import math
import os
import select
import signal
import socket
import struct
import threading
import time
import warnings
from functools import lru_cache, partial
from typing import Any, Dict, List, Optional, Tuple, Union

from execnet_channel import ExecModel, trace

from . import _bootstrap
from ._errors import BootstrapError
from ._process import ChildProcess, PipedChild, ProcessIO, describe_status
from ._xspec import XSpec

__all__ = [
    "ForkServer",
    "ForkedChild",
    "fork_io",
    "report_fallback",
    "running_servers",
]

# What a server's interpreter took from its environment at its start, beyond PYTHON*:
# a caller whose values differ gets another server.
_STARTUP_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "EXECNET_DEBUG")
_STATUS = struct.Struct(">q")
# How long ``ForkedChild.pid`` waits for the server to tell it, if it was not read yet.
_PID_WAIT = 30.0
# The returncode a forked child reports when its server died before it could tell.
UNKNOWN_STATUS = 255

ServerKey = Tuple[Tuple[str, ...], Tuple[Tuple[str, str], ...]]

_servers: Dict[ServerKey, ForkServer] = {}
_servers_lock = threading.Lock()


class ServerGone(Exception):
    """The server cannot fork (it crashed, or it is shutting down: `crashed` says)."""

    def __init__(self, reason: str, crashed: bool) -> None:
        super().__init__(reason)
        self.crashed = crashed


def running_servers() -> Dict[ServerKey, int]:
    """{key: pid} of the fork servers this process runs now (for tests and tools)."""
    with _servers_lock:
        return {key: server.pid for key, server in _servers.items()}


@lru_cache(maxsize=None)
def _server_source() -> str:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_forkserver_remote.py")
    with open(path, encoding="utf-8") as file:
        return file.read()


def _umask() -> int:
    """This process's umask, read without changing it (os.umask would, for a moment,
    for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _socketpair() -> Tuple[Any, Any]:
    """A unix SOCK_SEQPACKET pair of the C-level socket type, never a green one (gevent
    and eventlet patch socket.socket: a peek with MSG_DONTWAIT would wait there)."""
    pair: Tuple[Any, Any] = _socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return pair


def _readable(fd: int, timeout: Optional[float]) -> bool:
    """Wait up to `timeout` seconds (None: no limit) until fd can be read or has ended.

    poll(), not select(): select() fails for descriptors numbered 1024 and above.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else math.ceil(max(0.0, timeout) * 1000)))


def _server_key(args: List[str]) -> ServerKey:
    env = tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith("PYTHON") or name in _STARTUP_VARIABLES
        )
    )
    return tuple(args), env


class ForkedChild(PipedChild):
    """A gateway's process, forked by a server: pid, exit status (reported by the
    server over the child's line) and kill, as ChildProcess offers them.

    The line carries the pid once the server forked, then the exit status. The pid is
    read when first needed (after the child's ready marker, normally): until the
    server answered, ``pid`` waits for it.
    """

    def __init__(self, server: ForkServer, pipes: Tuple[int, int, int], line: Any) -> None:
        super().__init__(*pipes)
        self._server = server
        self._line = line
        self._pid: Optional[int] = None
        self._status: Optional[int] = None
        self._lost = False  # the server ended before it told the pid or the status
        self._released = False
        self._lock = threading.Lock()
        self._pidfd: Optional[int] = None

    def take_pid(self, timeout: Optional[float]) -> Optional[int]:
        """The pid, waiting up to `timeout` seconds for the server to tell it; None
        when the server ended (or crashed) before it forked the child."""
        with self._lock:
            self._take_pid(timeout)
        return self._pid

    def _read_line(self, timeout: Optional[float]) -> Tuple[Optional[int], bool]:
        """(the next number on the line: pid, then status, or None if nothing came
        within `timeout`; whether the line ended: the server is gone)."""
        try:
            ready = _readable(self._line.fileno(), timeout)
            data = self._line.recv(_STATUS.size) if ready else None
        except OSError:
            data = b""
        if data is None:
            return None, False
        if len(data) != _STATUS.size:
            return None, True
        number: int = _STATUS.unpack(data)[0]
        return number, False

    def _take_pid(self, timeout: Optional[float]) -> None:
        if self._pid is not None or self._lost:
            return
        self._pid, self._lost = self._read_line(timeout)
        if self._pid is not None:
            self._pidfd = self._open_pidfd(self._pid)
        elif self._lost:
            trace("fork request: the fork server ended before it forked")

    @property
    def never_forked(self) -> bool:
        """The server ended before it told a pid (it crashed, or was shutting down)."""
        return self._pid is None and self._lost

    def _open_pidfd(self, pid: int) -> Optional[int]:
        # The server reaps a child only once we closed its line (or the server ended):
        # while the line is open the pid is this child's. Checked after the open.
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return None
        try:
            pidfd: int = pidfd_open(pid)
        except OSError:
            return None
        try:
            alive = self._line.recv(_STATUS.size, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            alive = True
        except OSError:
            alive = False
        if not alive:
            os.close(pidfd)
            return None
        return pidfd

    @property
    def pid(self) -> int:
        if self._pid is None:
            self.take_pid(_PID_WAIT)
        return -1 if self._pid is None else self._pid

    def _take_status(self, timeout: Optional[float]) -> None:
        """Read the status from the line, waiting up to `timeout` (lock held)."""
        if self._status is not None or self._lost:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._take_pid(timeout)
        if self._pid is None:
            return
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._status, self._lost = self._read_line(remaining)
        if self._status is None and not self._lost:
            return
        if self._lost:
            trace(f"forked child {self._pid}: its fork server ended before its status")
        self._line.close()  # the server may reap it now

    def _wait_lost(self, deadline: Optional[float]) -> None:
        """The server is gone: wait for the process itself, by its pidfd or its pid."""
        if self._pid is None:  # never forked: nothing to wait for
            self._status = UNKNOWN_STATUS
            return
        while True:
            if self._pidfd is not None:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if _readable(self._pidfd, remaining):
                    self._status = UNKNOWN_STATUS
                    return
            else:
                try:
                    os.kill(self._pid, 0)
                except ProcessLookupError:
                    self._status = UNKNOWN_STATUS
                    return
                except PermissionError:
                    pass
                time.sleep(0.01)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        """The returncode (negative: killed by that signal), or None while it runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return None
        try:
            self._take_status(timeout)
            if self._status is None and self._lost:
                self._wait_lost(deadline)
            if self._status is not None and self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            return self._status
        finally:
            self._lock.release()

    def kill(self) -> None:
        """SIGKILL the child; never blocks."""
        if self._status is not None:
            return
        if self._pid is None and self._lock.acquire(False):
            try:
                self._take_pid(0)  # it is on the line by now, unless the fork is not done
            finally:
                self._lock.release()
        if self._pid is None:
            trace("fork request: not killed, no pid yet (the child ends at its pipes' end)")
            return
        with contextlib.suppress(OSError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                return
            # No pidfd (CPython 3.8): the pid is still this child's while the server
            # is there and has not reported its end on the line.
            try:
                ended = len(self._line.recv(_STATUS.size, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except BlockingIOError:
                os.kill(self._pid, signal.SIGKILL)
            else:
                trace(f"forked child {self._pid}: not killed, ended already ({ended} bytes)")

    def release(self) -> None:
        """The gateway is done with this child (its connection ended); idempotent."""
        if not self._released:
            self._released = True
            self._server.release()

    def __del__(self) -> None:
        pidfd, self._pidfd = getattr(self, "_pidfd", None), None
        if pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(pidfd)

    def __repr__(self) -> str:
        return f"<ForkedChild pid={self._pid} {describe_status(self._status)}>"


class ForkServer:
    """One fork server process and the control socket to it (see the module docstring)."""

    def __init__(
        self, key: ServerKey, process: ChildProcess, control: Any, start_env: Dict[str, str]
    ) -> None:
        self.key = key
        self.process = process
        self.control = control
        # The environment the server was started with: requests carry changes to it.
        self.start_env = start_env
        self._lock = threading.Lock()  # one request at a time on the control socket
        self._children = 0  # forked and not yet released
        self._closing = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, key: ServerKey, spec: XSpec, args: List[str], same: bool) -> ForkServer:
        """Start a server for the command `args` (BootstrapError if it does not come up)."""
        from ._builtin import classify_local_failure
        from ._connect import bootstrap_child
        from ._transports import Command

        ours, theirs = _socketpair()
        start_env = dict(os.environ)
        try:
            process = bootstrap_child(
                spec,
                Command(
                    [*args, "-c", _bootstrap.first_stage("stdio")],
                    same_interpreter=same,
                    classify=classify_local_failure,
                ),
                extra={
                    "fork_server": {
                        "control": theirs.fileno(),
                        "source": _server_source(),
                        "start_env": start_env,
                    },
                    # the gateways' settings come with their requests, not the server's
                    "env": {},
                    "nice": "",
                    "chdir": "",
                },
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        process.close_fds()  # the bootstrap pipes: the server reads /dev/null now
        trace(f"fork server {process.pid} started for {args}")
        return cls(key, process, ours, start_env)

    def crashed_report(self) -> str:
        """How the server ended, for the warning."""
        return self.process.postmortem(wait=2.0)

    def fork(self, request: Dict[str, Any]) -> ForkedChild:
        """Have a child forked with `request`'s settings; ServerGone if the request
        cannot be sent. Whether the server forked it, the child's pid tells."""
        child_stdin, stdin_fd = os.pipe()
        stdout_fd, child_stdout = os.pipe()
        stderr_read, stderr_write = os.pipe()
        line, their_line = _socketpair()
        theirs = [child_stdin, child_stdout, stderr_write, their_line.fileno()]
        ours = [stdin_fd, stdout_fd, stderr_read]
        try:
            data = marshal.dumps(request, 2)
            with self._lock:
                if self._closing:
                    raise ServerGone("the fork server is shutting down", crashed=False)
                try:
                    self.control.sendmsg(
                        [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", theirs))]
                    )
                except OSError as exc:
                    if exc.errno == errno.EMSGSIZE:
                        raise ServerGone(f"request too large ({len(data)} bytes)", False) from None
                    raise ServerGone(f"sending to the fork server failed: {exc}", True) from None
                self._children += 1
        except BaseException:
            line.close()
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs[:3]:
                os.close(fd)
            their_line.close()
        # The pid follows on the line once the server forked; nobody waits for it here:
        # the child's ready marker comes at about the same time (see ForkedChild.pid).
        return ForkedChild(self, (stdin_fd, stdout_fd, stderr_read), line)

    def release(self) -> None:
        """One child fewer; the last one shuts the server down."""
        with self._lock:
            self._children -= 1
            if self._children > 0 or self._closing:
                return
            self._closing = True
        self._retire()

    def _retire(self) -> None:
        with _servers_lock:
            if _servers.get(self.key) is self:
                del _servers[self.key]
        self.control.close()  # the server exits once its children are reaped
        trace(f"fork server {self.pid}: shutting down")
        _reap_later(self.process)

    def abandon(self) -> None:
        """Forget a server that crashed (killed for sure, reaped)."""
        with self._lock:
            self._closing = True
        self.process.kill()
        self.process.wait(5)
        with _servers_lock:
            if _servers.get(self.key) is self:
                del _servers[self.key]
        self.control.close()


def _reap_later(process: ChildProcess) -> None:
    """Reap an exiting server without blocking the caller (an OS thread waits for it)."""
    from ._process import _start_os_thread

    def reap() -> None:
        process.wait(None)

    try:
        _start_os_thread(reap, ())
    except RuntimeError:  # interpreter shutdown: the server ends with its children,
        process.wait(0)  # and its parent (this process) is ending too


def _server_for(spec: XSpec, args: List[str], same: bool) -> ForkServer:
    key = _server_key(args)
    with _servers_lock:
        server = _servers.get(key)
        if server is not None:
            return server
        # Started under the lock: concurrent first gateways share one server.
        server = ForkServer.start(key, spec, args, same)
        _servers[key] = server
        return server


def fork_io(
    spec: XSpec,
    model: ExecModel,
    args: List[str],
    *,
    same: bool,
    timeout: float,
) -> Union[ForkIO, str]:
    """The IO of a ready child forked from the server for `args` (the Gateway goes over
    it: `Connection(io, child=io.child, ready=True)`), or why it must start as a plain
    popen child instead: "" when that needs no report, else what went wrong with the
    server (the caller reports it with `report_fallback` once the plain start worked;
    when that fails too, its own error says more)."""
    from ._builtin import classify_local_failure
    from ._connect import handshake
    from ._transports import Command

    try:
        cwd = os.getcwd()
    except OSError as exc:  # a removed cwd: a plain child inherits it, a fork cannot
        trace(f"gateway {spec.id}: no fork ({exc}); plain popen start")
        return ""
    marker = _bootstrap.new_marker()
    request = _bootstrap.serving_settings(spec, marker)
    request["spec_env"] = _bootstrap.spec_environment(spec)
    request["cwd"] = cwd
    request["umask"] = _umask()
    deadline = time.monotonic() + timeout
    command = Command(args, classify=classify_local_failure)
    while True:
        try:
            server = _server_for(spec, args, same)
        except BootstrapError as exc:
            return f"the fork server for {args[0]!r} did not start ({exc})"
        request["env_set"], request["env_unset"] = _environment_changes(server.start_env)
        try:
            child = server.fork(request)
        except ServerGone as exc:
            if not exc.crashed:
                if "too large" in str(exc):
                    trace(f"gateway {spec.id}: no fork ({exc}); plain popen start")
                    return ""
                continue  # it shut down just now: start another
            return _crashed(server, str(exc))

        try:
            handshake(spec, partial(child.read_some, deadline=deadline), marker, child, command)
            if child.take_pid(max(0.0, deadline - time.monotonic())) is None:
                raise ServerGone("the fork server ended before it told the pid", crashed=True)
        except BaseException as exc:
            child.kill()
            child.close_fds()
            child.wait(5)
            child.release()
            if child.never_forked or isinstance(exc, ServerGone):
                return _crashed(server, "the fork server ended before it forked")
            raise
        return ForkIO(child, model)


def _environment_changes(start_env: Dict[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """This process's environment as changes to `start_env`: (set, removed)."""
    current = os.environ
    changed = {name: value for name, value in current.items() if start_env.get(name) != value}
    return changed, [name for name in start_env if name not in current]


def _crashed(server: ForkServer, what: str) -> str:
    """Forget a server that is gone; what to report."""
    report = server.crashed_report()
    server.abandon()
    return f"the fork server (pid {server.pid}) is gone: {what}; {report}"


def report_fallback(what: str, spec: XSpec) -> None:
    """Warn that a fork gateway started as a plain popen child, and why."""
    warnings.warn(
        f"execnet: {what}; gateway {spec.id!r} ({spec}) started as a plain popen child",
        RuntimeWarning,
        stacklevel=5,
    )


class ForkIO(ProcessIO):
    """ProcessIO over a forked child's pipes; the gateway's end releases the child."""

    child: ForkedChild

    def close_read(self) -> None:
        super().close_read()
        self.child.release()


@atexit.register
def _shut_down_all() -> None:
    # The servers end once their children did (those end with this process's pipes).
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        with contextlib.suppress(OSError):
            server.control.close()
