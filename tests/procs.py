"""Process checks by pid, through the kernel (/proc; no psutil): for the tests that
judge whether a process is gone."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["alive", "children", "exists", "wait_gone"]


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a zombie has ended, only not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" not in state.split()[1:2]


def exists(pid: int) -> bool:
    """True while `pid` is in the process table at all (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid: int | None = None) -> set[int]:
    """The direct child processes of `pid` (default: this process), from /proc."""
    pid = os.getpid() if pid is None else pid
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        found.update(int(part) for part in text.split())
    return found


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of `pids` is alive; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)
