"""Room in this process's descriptor table for many gateways, made before they are.

Every gateway holds a few descriptors here (pipes, a socket, a fork server's line).
Linux starts a process with a table of 64 and doubles it when a descriptor above its
size is opened; in a process with more than one thread (a gateway's receiver is one)
each doubling waits for an RCU grace period, milliseconds of nothing. A Group of 32
gateways doubled it twice: 23 ms of a 67 ms start-and-end of 32 fork gateways
(benchmarks/RESULTS.md). `grow_fd_table` grows it once, early, to 1024 (or the
descriptor limit): a process with 0-2 open but one thread does that without any wait,
and the table costs 8 KiB. Nothing else changes: a new descriptor still gets the lowest
free number, and no descriptor stays open.
"""

from __future__ import annotations

import os

__all__ = ["grow_fd_table"]

_TABLE = 1024
_grown = False


def grow_fd_table() -> None:
    """Make the descriptor table hold 1024 descriptors (at most the soft limit), once
    per process; nothing where the platform has no fcntl (Windows)."""
    global _grown
    if _grown:
        return
    _grown = True
    try:
        import fcntl
        import resource
    except ImportError:
        return
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    size = _TABLE if soft == resource.RLIM_INFINITY else min(_TABLE, soft)
    try:
        low = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        # F_DUPFD takes the lowest free number >= the one asked: it never replaces a
        # descriptor of the program's.
        os.close(fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, size - 1))
    except OSError:  # none free that high, or the limit is lower: nothing to gain
        pass
    finally:
        os.close(low)
