"""Ending a set of gateways for sure: exit, wait, kill, and say what it took.

Every wait runs against a deadline, and the calls that could block (exit on a stuck
stream, a kill that hangs) are abandoned at the deadline: terminate(timeout) returns
after about twice `timeout` at most, whatever the gateways do.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Set, Tuple

from execnet_channel import trace
from execnet_transport import Terminable

EXITED = "exited"
KILLED = "killed"
CLOSED = "closed"
UNRESPONSIVE = "unresponsive"


@dataclass(frozen=True)
class GatewayTermination:
    """How one gateway ended: 'exited', 'killed', 'closed' or 'unresponsive'.

    'exited': the receiver finished and the process (if any) ended by itself within the
    timeout (also when it had died before). 'killed': it was still running after the
    timeout and its process was killed (a local child; for a via gateway, the child on
    the via host, killed by its proxy). 'closed': it was still running after the
    timeout and its connection was closed from this side, but its process is out of
    reach (a socket gateway: the server's process may live on). 'unresponsive': it was
    still running when terminate gave up (a kill that did not take). `pid` and `status`:
    the local child process and its exit status, where there is one.

    >>> from execnet_group import Group
    >>> (ending,) = Group(["popen"]).terminate(timeout=30).gateways
    >>> ending.id, ending.outcome, ending.status, ending.pid > 0
    ('gw0', 'exited', 0, True)
    """

    id: str
    outcome: str
    pid: Optional[int] = None
    status: Optional[int] = None


@dataclass(frozen=True)
class TerminateReport:
    """What Group.terminate had to do, gateway by gateway.

    >>> from execnet_group import Group
    >>> report = Group(["popen", "popen"]).terminate(timeout=30)
    >>> report.exited, report.killed
    (['gw0', 'gw1'], [])
    >>> bool(report)  # True when no gateway is unresponsive
    True
    >>> print(report)
    terminated: exited ['gw0', 'gw1']
    """

    gateways: Tuple[GatewayTermination, ...] = ()

    def _ids(self, outcome: str) -> List[str]:
        return [item.id for item in self.gateways if item.outcome == outcome]

    @property
    def exited(self) -> List[str]:
        """Ids of the gateways that ended by themselves."""
        return self._ids(EXITED)

    @property
    def killed(self) -> List[str]:
        """Ids of the gateways whose process had to be killed."""
        return self._ids(KILLED)

    @property
    def closed(self) -> List[str]:
        """Ids of the gateways whose connection was closed; their remote process could
        not be killed from here (socket gateways) and may still run."""
        return self._ids(CLOSED)

    @property
    def unresponsive(self) -> List[str]:
        """Ids of the gateways that may still be running."""
        return self._ids(UNRESPONSIVE)

    def __bool__(self) -> bool:
        return not self.unresponsive

    def __str__(self) -> str:
        parts = [
            f"{outcome} {ids}"
            for outcome in (EXITED, KILLED, CLOSED, UNRESPONSIVE)
            if (ids := self._ids(outcome))
        ]
        return "terminated: " + ("; ".join(parts) if parts else "no gateways")


# Seconds the kill phase gets beyond its `timeout`, so that even terminate(0) waits long
# enough for a SIGKILL'd child to be reaped.
_KILL_PHASE_MINIMUM = 0.2

# via= chains longer than this are not followed (a cycle cannot be made, but a bound
# costs nothing): their gateways count as this deep.
_MAX_VIA_DEPTH = 100


def _depth(gateway: Terminable) -> int:
    """How many via= hops lie between this process and the gateway's remote."""
    depth, via = 0, gateway.via_gateway
    while via is not None and depth < _MAX_VIA_DEPTH:
        depth, via = depth + 1, via.via_gateway
    return depth


# How long the call under way may take before each remaining call gets a thread of its
# own (exit and kill take microseconds unless a stream or a process is stuck).
_STALL = 0.02


def _bounded(calls: Sequence[Tuple[str, Callable[[], object]]], deadline: float | None) -> None:
    """Make each (what, func) call, but stop waiting for them at `deadline` (one still
    blocked then goes on in the background).

    Exit and kill should not block, but a send stuck on a full pipe or a kill that
    hangs must not hold up terminate, nor the calls for the other gateways. One thread
    makes the calls one after another; once a call has taken longer than _STALL, each
    call not yet started gets a thread of its own. (A thread per call from the start
    costs 32 gateways' terminate 4 ms of 22.) Where no thread can be started any more
    (at interpreter exit on Python 3.12+), the calls are made here.
    """

    def call(what: str, func: Callable[[], object]) -> None:
        try:
            func()
        except Exception as exc:  # a stream that is already gone, a process reaped
            trace(f"terminate: {what} raised {exc!r}")

    if deadline is None:
        for what, func in calls:
            call(what, func)
        return
    done = threading.Condition()
    todo = list(range(len(calls)))  # the calls not started yet, by index
    ended: Set[int] = set()  # the calls that returned

    def run(index: int) -> None:
        call(*calls[index])
        with done:
            ended.add(index)
            done.notify()

    def next_call() -> Optional[int]:
        with done:
            return todo.pop(0) if todo else None

    def one_after_another() -> None:
        while (index := next_call()) is not None:
            run(index)

    def start(target: Callable[..., None], *args: int) -> None:
        try:
            thread = threading.Thread(target=target, args=args, name="execnet-terminate")
            thread.daemon = True
            thread.start()
        except RuntimeError:  # interpreter shutdown
            target(*args)

    start(one_after_another)
    with done:
        while todo and time.monotonic() < deadline:
            before = len(ended)
            done.wait(min(_STALL, max(0.0, deadline - time.monotonic())))
            if len(ended) == before:
                break  # the call under way is stuck: the others go on without it
        stalled, todo[:] = list(todo), []
    for index in stalled:
        start(run, index)
    with done:
        while len(ended) < len(calls) and done.wait(max(0.0, deadline - time.monotonic())):
            pass
        missing = [calls[i][0] for i in range(len(calls)) if i not in ended]
    for what in missing:
        trace(f"terminate: {what} still blocked at the deadline; giving up on it")


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _killable(gateway: Terminable) -> bool:
    """Whether cutting the connection also ends the remote process: a via gateway's
    proxy kills the child it started; a socket server's process is out of reach."""
    return gateway.via_gateway is not None or gateway.child_pid is not None


class _State:
    """One gateway on its way out: has it ended (receiver and child), with what status."""

    def __init__(self, gateway: Terminable) -> None:
        self.gateway = gateway
        self.pid: int | None = gateway.child_pid
        self.status: int | None = None
        self.ended = False

    def wait(self, deadline: float | None) -> bool:
        """Wait for the receiver and the process until deadline; True once both ended."""
        if self.ended:
            return True
        gateway = self.gateway
        gateway.join(_left(deadline))
        if gateway.hasreceiver():
            return False
        if self.pid is not None:
            self.status = gateway.wait_child(_left(deadline))
            if self.status is None:
                return False
        self.ended = True
        return True


def terminate_gateways(gateways: Sequence[Terminable], timeout: float | None) -> TerminateReport:
    """Exit every gateway, proxies after those that go through them; see Group.terminate.

    Phase one tells each gateway to exit, deepest `via=` level first, and waits for
    receivers and processes until `timeout`; phase two kills the local processes still
    running and waits up to another `timeout` for them to go.
    """
    if not gateways:
        return TerminateReport()
    start = time.monotonic()
    clean_deadline = None if timeout is None else start + timeout
    hard_deadline = None if timeout is None else start + 2 * timeout + _KILL_PHASE_MINIMUM
    states = [_State(gw) for gw in gateways]
    levels = sorted({_depth(gw) for gw in gateways}, reverse=True)
    for level in levels:
        here = [state for state in states if _depth(state.gateway) == level]
        _bounded([(f"exit of {s.gateway.id}", s.gateway.exit) for s in here], clean_deadline)
        for state in here:
            state.wait(clean_deadline)
    outcomes = {id(state): EXITED for state in states if state.ended}
    stuck = [state for state in states if not state.ended]
    ends: List[Tuple[str, Callable[[], object]]] = []
    for state in stuck:
        gateway = state.gateway
        if state.pid is not None:
            trace(
                f"terminate: {gateway.id} still running after {timeout}s; killing pid {state.pid}"
            )
            ends.append((f"kill of {gateway.id}", gateway.kill_child))
        else:  # socket or via: no process of ours to kill; cut the connection instead
            trace(f"terminate: {gateway.id} still running after {timeout}s; cutting its connection")
            ends.append((f"cut of {gateway.id}", gateway.cut_connection))
    _bounded(ends, hard_deadline)
    for state in stuck:
        if not state.wait(hard_deadline):
            outcomes[id(state)] = UNRESPONSIVE
        else:
            outcomes[id(state)] = KILLED if _killable(state.gateway) else CLOSED
    report = TerminateReport(
        tuple(GatewayTermination(s.gateway.id, outcomes[id(s)], s.pid, s.status) for s in states)
    )
    trace(str(report))
    return report
