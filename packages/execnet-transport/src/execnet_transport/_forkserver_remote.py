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

The server is the forked children's parent, so only it can reap them; it reaps a child
only after the opener has read its status and closed the line (``waitid`` with
``WNOWAIT`` peeks at the status first). Until then the pid cannot be reused, so the
opener may signal it by pid without a race. The server ends once the opener closed
the control socket (the last gateway ended, or the opener exited) and every child has
been reaped.

Standard library only, and nothing newer than CPython 3.8 and PyPy3 offer; no typing.
"""

from __future__ import annotations

import contextlib
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

    In a forked child it returns at once: (the request, its stdin/stdout/stderr fds,
    and what the server's command line changed in the environment it was started with:
    variables set, variables removed, as by ``python=env NAME=value python3``); the
    caller then runs `become_child`, serves (``_stage.start``) and ends with `end_child`.
    """
    changed = {k: v for k, v in os.environ.items() if start_env.get(k) != v}
    removed = [k for k in start_env if k not in os.environ]
    control = socket.socket(fileno=control_fd)
    os.chdir("/")  # hold no directory of the opener's busy
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C at a terminal is for the opener
    freeze = getattr(__import__("gc"), "freeze", None)
    if freeze is not None:
        freeze()  # what the server holds now stays shared with the children
    lines: dict[int, socket.socket | None] = {}  # pid -> its line (None: dropped by the opener)
    reported: set[int] = set()  # pids whose status went out, not yet reaped
    closing = False
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wake_read, select.POLLIN)
    by_fd: dict[int, int] = {}  # line fd -> pid
    while not (closing and not lines):
        for fd, _ in poller.poll():
            if fd == wake_read:
                try:
                    while os.read(wake_read, 512):
                        pass
                except BlockingIOError:
                    pass
                for pid in [p for p in lines if p not in reported]:
                    code = _exit_code(pid)
                    if code is None:
                        continue
                    line = lines[pid]
                    if line is None:  # nobody listens any more
                        _reap(pid)
                        del lines[pid]
                        continue
                    reported.add(pid)
                    try:  # noqa: SIM105
                        line.send(_STATUS.pack(code))
                    except OSError:
                        pass  # closed on the other side: its POLLHUP follows
            elif fd == control.fileno():
                try:
                    data, ancillary, flags, _ = control.recvmsg(
                        MAX_REQUEST, socket.CMSG_SPACE(_FDS * 4)
                    )
                except OSError:
                    data, ancillary, flags = b"", [], 0
                if not data:
                    closing = True
                    poller.unregister(control)
                    control.close()
                    continue
                fds: list[int] = []
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        count = len(payload) // 4
                        fds.extend(struct.unpack(f"{count}i", payload[: count * 4]))
                if len(fds) != _FDS or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                    for extra in fds:
                        os.close(extra)
                    continue  # not a request of our opener's making
                request = marshal.loads(data)
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    for held in (wake_read, wake_write, fds[3]):
                        os.close(held)
                    control.close()
                    for other in lines.values():
                        if other is not None:
                            other.close()
                    return request, fds[:3], changed, removed
                for passed in fds[:3]:
                    os.close(passed)
                line = socket.socket(fileno=fds[3])
                lines[pid] = line
                by_fd[line.fileno()] = pid
                poller.register(line, select.POLLIN)
                with contextlib.suppress(OSError):
                    line.send(_STATUS.pack(pid))
            else:  # a line: the opener closed it (status read, or gateway dropped)
                pid = by_fd.pop(fd)
                poller.unregister(fd)
                line = lines[pid]
                lines[pid] = None
                if line is not None:
                    line.close()
                if pid in reported:
                    reported.discard(pid)
                    _reap(pid)
                    del lines[pid]
                elif _exit_code(pid) is not None:
                    _reap(pid)
                    del lines[pid]
    return None


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
