"""The fork server's own code: it travels as source and runs in the server process.

A popen//fork gateway's opener starts one server per interpreter (see _forkserver.py):
a fresh interpreter that imported only the travelling packages, holds no thread, and
waits on its control socket (a unix SOCK_SEQPACKET socket pair made by the opener,
never bound to a path: no other process can reach it). Each request is one message:
the marshal'd settings of the child (its id, execmodel, marker, the caller's cwd,
umask and environment as of the makegateway call, the spec's nice/chdir) and, as
SCM_RIGHTS, four descriptors: the child's stdin, stdout and stderr pipe ends and its
*line*, a socket pair of its own over which the server reports the child's pid and,
later, its exit status.

The request is read not by the server but by its *spare*: a child forked ahead of time
that waits on the control socket, hands the request's line to the server over a link of
its own (so the server reports that child's pid and status) and becomes the gateway's
child, while the server forks the next spare (see `_Server`).

The server is the forked children's parent, so only it can reap them; it reaps a child
only after the opener has read its status and closed the line (``waitid`` with
``WNOWAIT`` peeks at the status first). Until then the pid cannot be reused, so the
opener may signal it by pid without a race. The server ends once the opener closed
the control socket (the last gateway ended, or the opener exited) and every child has
been reaped.

Standard library only, and nothing newer than CPython 3.8 and PyPy3 offer; no typing.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import socket
import struct

# A request's size limit: settings plus the caller's whole environment.
MAX_REQUEST = 1 << 20
_FDS = 4  # stdin, stdout, stderr, line
_STATUS = struct.Struct(">q")


def _exit_code(pid: int) -> int | None:
    """The child's returncode (negative: killed by that signal) without reaping it."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # no peeking here: reap now (the opener signals a reaped pid never
        done, status = os.waitpid(pid, os.WNOHANG)  # after reading its status)
        if not done:
            return None
        if os.WIFSIGNALED(status):
            return -os.WTERMSIG(status)
        return os.WEXITSTATUS(status)
    result = waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if result is None or not result.si_pid:
        return None
    if result.si_code == os.CLD_EXITED:
        return int(result.si_status)
    return -int(result.si_status)


def _reap(pid: int) -> None:
    try:  # noqa: SIM105  (no contextlib here: the server imports only what it needs)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # reaped already (no waitid: _exit_code did)


def serve_forks(
    control_fd: int, start_env: dict[str, str]
) -> tuple[dict[str, object], list[int], dict[str, str], list[str]] | None:
    """Serve fork requests on `control_fd` until the opener closed it and every child
    has been reaped (returns None: the server then exits).

    In a forked child it returns: (the request, its stdin/stdout/stderr fds, and what
    the server's command line changed in the environment it was started with:
    variables set, variables removed, as by ``python=env NAME=value python3``); the
    caller then runs `become_child`, serves (``_stage.start``) and ends with `end_child`.
    """
    changed = {k: v for k, v in os.environ.items() if start_env.get(k) != v}
    removed = [k for k in start_env if k not in os.environ]
    os.chdir("/")  # hold no directory of the opener's busy
    freeze = getattr(__import__("gc"), "freeze", None)
    if freeze is not None:
        freeze()  # what the server holds now stays shared with the children
    forked = _Server(socket.socket(fileno=control_fd)).serve()
    if forked is None:
        return None
    request, fds = forked
    return request, fds, changed, removed


class _Server:
    """The server's loop: one *spare* child, forked ahead, waits for the next request.

    The spare reads the control socket itself: a request reaches the process that
    becomes the gateway's child without a hop through the server, and the fork is
    done before the request comes. The spare hands the request's line to the server
    (which reports the child's pid and, later, its exit status on it) and becomes the
    child; the server forks the next spare. A spare that reads the end of the control
    socket tells the server so (the opener is done) and exits; one whose server is
    gone exits too.
    """

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C at a terminal is for the opener
        self.lines: dict[int, socket.socket | None] = {}  # pid -> line (None: dropped)
        self.by_fd: dict[int, int] = {}  # line fd -> pid
        self.reported: set[int] = set()  # pids whose status went out, not yet reaped
        self.closing = False
        self.poller = select.poll()
        self.poller.register(self.wake_read, select.POLLIN)
        self.spare: tuple[int, socket.socket] | None = None  # (pid, the server's link end)

    def serve(self) -> tuple[dict[str, object], list[int]] | None:
        forked = self._fork_spare()
        while forked is None and not (self.closing and not self.lines and self.spare is None):
            for fd, _ in self.poller.poll():
                if fd == self.wake_read:
                    self._on_sigchld()
                elif self.spare is not None and fd == self.spare[1].fileno():
                    forked = self._on_spare()
                    if forked is not None:
                        break
                else:
                    self._on_line(fd)
        return forked

    def _fork_spare(self) -> tuple[dict[str, object], list[int]] | None:
        """Fork the next spare; in the spare, its request once one came."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            return self._be_spare(theirs)
        theirs.close()
        self.spare = (pid, ours)
        self.poller.register(ours, select.POLLIN)
        return None

    def _be_spare(self, link: socket.socket) -> tuple[dict[str, object], list[int]]:
        """In a spare: wait for a request, hand its line to the server, return it."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self.wake_read)
        os.close(self.wake_write)
        for other in self.lines.values():
            if other is not None:
                other.close()
        waiting = select.poll()
        waiting.register(self.control, select.POLLIN)
        waiting.register(link, select.POLLIN)
        while True:
            for fd, _ in waiting.poll():
                if fd == link.fileno():
                    os._exit(0)  # the server is gone: no request may come to this spare
            try:
                data, ancillary, flags, _ = self.control.recvmsg(
                    MAX_REQUEST, socket.CMSG_SPACE(_FDS * 4)
                )
            except BlockingIOError:
                continue
            except OSError:
                data, ancillary, flags = b"", [], 0
            if not data:  # the opener closed the control socket: it is done
                try:  # noqa: SIM105
                    link.send(b"E")
                except OSError:
                    pass
                os._exit(0)
            fds = _passed_fds(ancillary)
            if len(fds) != _FDS or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for extra in fds:
                    os.close(extra)
                continue  # not a request of our opener's making
            try:
                link.sendmsg([b"T"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_array(fds[3:]))])
            except OSError:
                os._exit(1)  # the server is gone: nobody could report this child's end
            os.close(fds[3])
            link.close()
            self.control.close()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            return marshal.loads(data), fds[:3]

    def _on_spare(self) -> tuple[dict[str, object], list[int]] | None:
        """The spare took a request ("T" and its line), or read the end ("E"), or died."""
        assert self.spare is not None
        pid, link = self.spare
        try:
            data, ancillary, _, _ = link.recvmsg(1, socket.CMSG_SPACE(4))
        except OSError:
            data, ancillary = b"", []
        fds = _passed_fds(ancillary)
        self.spare = None
        self.poller.unregister(link)
        link.close()
        if data == b"T" and len(fds) == 1:
            line = socket.socket(fileno=fds[0])
            self.lines[pid] = line
            self.by_fd[line.fileno()] = pid
            self.poller.register(line, select.POLLIN)
            try:  # noqa: SIM105
                line.send(_STATUS.pack(pid))
            except OSError:
                pass  # the opener dropped it: its POLLHUP follows
            return self._fork_spare()
        for extra in fds:
            os.close(extra)
        _reap(pid)  # it exits (or exited) without a request
        if data == b"E":
            self.closing = True
            return None
        return self._fork_spare()  # it died waiting (killed): the next one waits

    def _on_sigchld(self) -> None:
        try:
            while os.read(self.wake_read, 512):
                pass
        except BlockingIOError:
            pass
        for pid in [p for p in self.lines if p not in self.reported]:
            code = _exit_code(pid)
            if code is None:
                continue
            line = self.lines[pid]
            if line is None:  # nobody listens any more
                _reap(pid)
                del self.lines[pid]
                continue
            self.reported.add(pid)
            try:  # noqa: SIM105
                line.send(_STATUS.pack(code))
            except OSError:
                pass  # closed on the other side: its POLLHUP follows

    def _on_line(self, fd: int) -> None:
        """The opener closed a line (status read, or the gateway dropped)."""
        pid = self.by_fd.pop(fd)
        self.poller.unregister(fd)
        line = self.lines[pid]
        self.lines[pid] = None
        if line is not None:
            line.close()
        if pid in self.reported:
            self.reported.discard(pid)
            _reap(pid)
            del self.lines[pid]
        elif _exit_code(pid) is not None:
            _reap(pid)
            del self.lines[pid]


def _passed_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(payload) // 4
            fds.extend(struct.unpack(f"{count}i", payload[: count * 4]))
    return fds


def _fd_array(fds: list[int]) -> bytes:
    return struct.pack(f"{len(fds)}i", *fds)


def end_child() -> None:
    """End a forked child as an interpreter ends, short of tearing down its objects.

    Non-daemon threads are waited for and atexit handlers run, as at any interpreter's
    exit; the teardown of every module and object is skipped: in a forked child it
    would write to (and so copy) most pages it still shares with the server, the
    larger part of the exit's cost, and frees nothing the exit does not free anyway.
    """
    import atexit
    import sys

    # Only threading's own threads are waited for: where threading was never imported
    # (a child that ran no such code) there are none, and importing it now would cost
    # the child most of its exit.
    threading = sys.modules.get("threading")
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105  (a closed or broken stream: nothing to keep)
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def become_child(
    request: dict[str, object], fds: list[int], changed: dict[str, str], removed: list[str]
) -> None:
    """Turn this forked process into the gateway child the request describes.

    Its pipes become fds 0-2, then it takes the caller's umask, cwd and environment as
    of the makegateway call (with the changes of the server's command line) and the
    spec's env:, as a fresh popen child does; ``_stage.start`` then applies the spec's
    nice and chdir, as for any child.
    """
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.umask(int(request["umask"]))  # type: ignore[call-overload]
    os.chdir(str(request["cwd"]))
    # The opener sent its environment as changes to the one it started the server
    # with; what the server's command line changed in that stays as it is. Only the
    # changed variables are touched: every write here copies a page shared with the
    # server, and rewriting the whole environment costs hundreds of them.
    env_set = request["env_set"]
    env_unset = request["env_unset"]
    spec_env = request["spec_env"]
    assert isinstance(env_set, dict)
    assert isinstance(env_unset, list)
    assert isinstance(spec_env, dict)
    environ = os.environ
    for name in env_unset:
        if name not in changed:
            environ.pop(name, None)
    for name, value in env_set.items():
        if name not in changed and name not in removed:
            environ[name] = value
    for name, value in spec_env.items():
        if environ.get(name) != value:
            environ[name] = value
