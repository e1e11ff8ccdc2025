"""Group: the gateways a program has open, their ids, and their end."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

from execnet_channel import get_execmodel, trace
from execnet_transport import Terminable, XSpec, make_gateway, starts_on_this_cpu

from ._multichannel import MultiChannel
from ._termination import TerminateReport, _left, terminate_gateways

if TYPE_CHECKING:
    from types import ModuleType

    from execnet_channel import ExecModel
    from execnet_transport import Gateway

#: How long each group is given to end at interpreter exit before its children are killed.
ATEXIT_TIMEOUT = 1.0

SpecLike = Union[XSpec, str]


def _local_start_limit() -> int:
    """The CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


class _Pending:
    """A gateway being bootstrapped: its id is taken, its place in the order fixed."""

    def __init__(self, spec: XSpec, seq: int, execmodel: ExecModel) -> None:
        self.spec = spec
        self.seq = seq
        self.done: Any = execmodel.Event()
        self.gateway: Gateway | None = None
        self.error: BaseException | None = None


class Group:
    """The gateways a program has open, by id: create, find, run code on all, end.

    >>> group = Group()
    >>> gw = group.makegateway("popen//id=worker")
    >>> group["worker"] is gw, "worker" in group, len(group)
    (True, True, 1)
    >>> group.remote_exec("channel.send(42)").receive_each()
    [42]
    >>> print(group.terminate(timeout=30))
    terminated: exited ['worker']

    `defaultspec` ('popen') is used when makegateway gets no spec. Gateways get ids
    gw0, gw1, ... unless their spec names one. Every group is terminated (with a short
    timeout) when the interpreter exits, so no child outlives its parent.
    """

    defaultspec: str = "popen"
    #: Bootstrap specs announced with allocate_id ahead, once the first of them is made
    #: (see "bootstrapping ahead" below). None: on when the environment variable
    #: EXECNET_PREFETCH is set (not empty, not 0); True/False on a group or the class.
    prefetch: Optional[bool] = None

    def __init__(self, xspecs: Iterable[SpecLike] = (), execmodel: str = "thread") -> None:
        self._lock = threading.RLock()
        self._gateways: List[Gateway] = []
        self._seqs: Dict[int, int] = {}  # id(gateway) -> order of creation
        self._pending: Dict[str, _Pending] = {}
        self._exited: List[Gateway] = []  # exited by the user, perhaps not yet ended
        self._autoidcounter = 0
        self._seq = 0
        self._announced: List[XSpec] = []  # given ids by allocate_id, not made yet
        self._prefetched: Dict[int, Tuple[_Pending, str]] = {}  # id(spec) -> (pending, snapshot)
        self._local_starts: List[_Pending] = []  # popen starts waiting for a worker
        self._local_workers = 0
        self.execmodel: ExecModel
        self.remote_execmodel: ExecModel
        self.set_execmodel(execmodel)
        _live_groups.add(self)
        specs = list(xspecs)
        if specs:
            self.makegateways(specs)

    def __repr__(self) -> str:
        return f"<Group {[gw.id for gw in self]!r}>"

    # -- looking gateways up ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._gateways)

    def __iter__(self) -> Iterator[Gateway]:
        with self._lock:
            return iter(list(self._gateways))

    def __getitem__(self, key: Union[int, str]) -> Gateway:
        """`group['gw0']` by id, `group[0]` by position (in order of creation)."""
        with self._lock:
            if isinstance(key, int):
                return self._gateways[key]
            for gateway in self._gateways:
                if gateway.id == key:
                    return gateway
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        """`'gw0' in group` by id, `gateway in group`; anything else is False."""
        with self._lock:
            if isinstance(key, str):
                return any(gateway.id == key for gateway in self._gateways)
            return any(gateway is key for gateway in self._gateways)

    # -- execution models ------------------------------------------------------------

    def set_execmodel(self, execmodel: str, remote_execmodel: Optional[str] = None) -> None:
        """Choose the local execution model and the default one of new remotes.

        `remote_execmodel` defaults to `execmodel`; a spec's own `execmodel=` wins.
        Only possible while the group has no gateway: a ValueError after.

        >>> group = Group()
        >>> group.set_execmodel("thread", "main_thread_only")
        >>> gw = group.makegateway("popen")
        >>> gw.remote_status().execmodel
        'main_thread_only'
        >>> _ = group.terminate(timeout=30)
        """
        with self._lock:
            if self._gateways or self._pending:
                ids = [gw.id for gw in self._gateways] + list(self._pending)
                raise ValueError(
                    f"cannot set the execution model of a group that already has gateways "
                    f"{ids}: call set_execmodel() before the first makegateway()"
                )
            local = get_execmodel(execmodel)
            remote = get_execmodel(remote_execmodel or execmodel)
            self.execmodel, self.remote_execmodel = local, remote

    # -- creating gateways -----------------------------------------------------------

    def allocate_id(self, spec: XSpec) -> None:
        """Give `spec` an id now (gw0, gw1, ...) unless it has one.

        Ids already used in the group are skipped. pytest-xdist calls this before
        makegateway, and again after `spec.id = None` to clone a crashed worker. The
        spec counts as announced: see makegateway about bootstrapping ahead.
        """
        with self._lock:
            self._allocate(spec)
            if self._prefetching() and not any(known is spec for known in self._announced):
                self._announced.append(spec)

    def _allocate(self, spec: XSpec) -> None:
        with self._lock:
            if spec.id is not None:
                return
            while True:
                candidate = f"gw{self._autoidcounter}"
                self._autoidcounter += 1
                if not self._id_taken(candidate):
                    spec.id = candidate
                    return

    def _id_taken(self, gateway_id: str) -> bool:
        return gateway_id in self._pending or any(gw.id == gateway_id for gw in self._gateways)

    def _reserve(self, spec: SpecLike | None) -> _Pending:
        if spec is None or (isinstance(spec, str) and not spec):
            spec = self.defaultspec  # "" too, as in execnet 2.1.2 (XSpec("") is refused)
        if not isinstance(spec, XSpec):
            spec = XSpec(spec)
        with self._lock:
            self._prune_exited()
            self._allocate(spec)
            assert spec.id is not None
            if self._id_taken(spec.id):
                raise ValueError(
                    f"a gateway with id {spec.id!r} is already in the group (spec {str(spec)!r})"
                )
            if spec.execmodel is None and self.remote_execmodel.backend != "thread":
                spec.execmodel = self.remote_execmodel.backend
            self._seq += 1
            pending = _Pending(spec, self._seq, self.execmodel)
            self._pending[spec.id] = pending
            return pending

    def _resolve(self, gateway_id: str, key: str, me: _Pending) -> Gateway:
        """The gateway `gateway_id` for `via=`/`installvia=`, waiting if it is being made."""
        spec = me.spec
        with self._lock:
            pending = self._pending.get(gateway_id)
            if pending is not None and pending.seq >= me.seq:
                raise ValueError(
                    f"{key}={gateway_id}: names a gateway made later or itself (spec {str(spec)!r})"
                )
            if pending is None:
                for gateway in self._gateways:
                    if gateway.id == gateway_id:
                        return gateway
                raise ValueError(
                    f"{key}={gateway_id}: no gateway with that id in the group (spec {str(spec)!r})"
                )
        pending.done.wait()
        if pending.gateway is None:
            raise ValueError(
                f"{key}={gateway_id}: that gateway could not be made (spec {str(spec)!r})"
            )
        return pending.gateway

    def _bootstrap(self, pending: _Pending) -> None:
        spec = pending.spec
        try:
            via = self._resolve(spec.via, "via", pending) if spec.via else None
            installvia = (
                self._resolve(spec.installvia, "installvia", pending) if spec.installvia else None
            )
            pending.gateway = make_gateway(
                spec, execmodel=self.execmodel, via=via, installvia=installvia, group=self
            )
        except BaseException as exc:
            pending.error = exc
        finally:
            pending.done.set()

    def _register(self, pending: _Pending) -> Gateway:
        """Put a made gateway in its place, or release the id of a failed one."""
        assert pending.spec.id is not None
        with self._lock:
            del self._pending[pending.spec.id]
            gateway = pending.gateway
            if gateway is None:
                assert pending.error is not None
                raise pending.error
            gateway.group = self
            self._seqs[id(gateway)] = pending.seq
            index = len(self._gateways)
            while index and self._seqs[id(self._gateways[index - 1])] > pending.seq:
                index -= 1
            self._gateways.insert(index, gateway)
            trace(f"group: added {gateway!r}")
            return gateway

    def makegateway(self, spec: SpecLike | None = None) -> Gateway:
        """Open a gateway for `spec` (an XSpec or a spec string; None or "": `defaultspec`).

        `via=ID` and `installvia=ID` name gateways of this group. A duplicate `id=` is
        refused with ValueError before anything starts; a spec that fails leaves
        nothing in the group. Safe to call from several threads at once: the bootstraps
        run side by side.
        """
        pending = self._claim(spec) if isinstance(spec, XSpec) else None
        if pending is None:
            pending = self._reserve(spec)
            self._start_prefetch()
            self._bootstrap(pending)
        return self._register(pending)

    # -- bootstrapping ahead ------------------------------------------------------------
    #
    # pytest-xdist gives every worker spec its id first (allocate_id) and then makes the
    # gateways one after another: each waits for the previous bootstrap. Once the first
    # announced spec is made, the others are bootstrapped side by side in the
    # background, and makegateway hands out the ready gateway, as long as the spec was
    # not changed since. Unclaimed ones are ended by terminate. Off unless asked for:
    # workers then become ready in any order, and pytest-xdist's loadscope scheduler
    # hands out its first scopes in that order (its own suite pins gw0 getting the
    # largest one, test_workqueue_ordered_by_size).

    def _prefetching(self) -> bool:
        if self.prefetch is None:
            return os.environ.get("EXECNET_PREFETCH", "") not in ("", "0")
        return self.prefetch

    @staticmethod
    def _snapshot(spec: XSpec) -> str:
        return repr((str(spec), sorted(vars(spec).items())))

    def _start_prefetch(self) -> None:
        with self._lock:
            announced, self._announced = self._announced, []
            started: List[_Pending] = []
            for spec in announced:
                if spec.id is None or id(spec) in self._prefetched or self._id_taken(spec.id):
                    continue
                pending = self._reserve(spec)
                self._prefetched[id(spec)] = (pending, self._snapshot(spec))
                started.append(pending)
        for pending in started:
            trace(f"group: bootstrapping {pending.spec} ahead")
        self._start_bootstraps(started)

    def _claim(self, spec: XSpec) -> Optional[_Pending]:
        """The prefetched bootstrap of this very spec, if it is unchanged since."""
        with self._lock:
            self._announced = [known for known in self._announced if known is not spec]
            entry = self._prefetched.pop(id(spec), None)
            if entry is None:
                return None
            pending, snapshot = entry
            if pending.spec is not spec:  # a new object at the address of a dead one
                self._prefetched[id(pending.spec)] = entry
                return None
        pending.done.wait()
        with self._lock:
            if self._snapshot(spec) != snapshot:
                # Changed after the bootstrap began (a new chdir=, say): start over.
                self._pending.pop(str(pending.spec.id), None)
                if pending.gateway is not None:
                    self._discard(pending.gateway)
                return None
            self._seq += 1  # the group's order is the order of makegateway calls
            pending.seq = self._seq
        if pending.gateway is None:  # failed ahead: fail (or succeed) now, in the caller
            pending.error = None
            pending.done = self.execmodel.Event()
            self._bootstrap(pending)
        return pending

    def _discard(self, gateway: Gateway) -> None:
        try:
            gateway.exit()
        except Exception as exc:
            trace(f"group: exit of a discarded gateway raised {exc!r}")
        with self._lock:
            self._exited.append(gateway)

    def _take_prefetched(self, timeout: Optional[float]) -> List[Gateway]:
        """Forget every unclaimed bootstrap; the gateways made (for terminate to end)."""
        with self._lock:
            entries = list(self._prefetched.values())
            self._prefetched.clear()
            self._announced = []
        made: List[Gateway] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        for pending, _ in entries:
            pending.done.wait(_left(deadline))
            if pending.error is not None:  # failed ahead, and nobody asked for it since
                trace(f"group: bootstrapping {pending.spec} ahead failed: {pending.error!r}")
            with self._lock:
                self._pending.pop(str(pending.spec.id), None)
            if pending.gateway is not None:
                made.append(pending.gateway)
        return made

    def makegateways(self, specs: Iterable[SpecLike | None]) -> List[Gateway]:
        """Open a gateway per spec, bootstrapping them all at once.

        Ids and order are those of calling makegateway for each spec in turn (specs
        may go `via=` one made earlier in the list). If one fails, the gateways before
        it stay in the group, those after it are exited, and its error is raised.
        """
        pendings: List[_Pending] = []
        fresh: List[_Pending] = []
        try:
            for spec in specs:
                claimed = self._claim(spec) if isinstance(spec, XSpec) else None
                if claimed is None:
                    claimed = self._reserve(spec)
                    fresh.append(claimed)
                pendings.append(claimed)
        except BaseException:
            with self._lock:
                for pending in pendings:
                    self._pending.pop(str(pending.spec.id), None)
            raise
        self._bootstrap_all(fresh)
        made: List[Gateway] = []
        failure: BaseException | None = None
        for pending in pendings:
            if failure is not None and pending.gateway is not None:
                pending.gateway.exit()
                with self._lock:
                    self._exited.append(pending.gateway)
                pending.gateway = None
                pending.error = failure
            try:
                made.append(self._register(pending))
            except BaseException as exc:
                if failure is None:
                    failure = exc
                elif exc is not failure:  # raised is the first failure; this one is told
                    trace(f"group: makegateways: {pending.spec} failed too: {exc!r}")
        if failure is not None:
            raise failure
        return made

    def _start_bootstraps(self, pendings: List[_Pending]) -> None:
        """Start bootstrapping each pending gateway; returns at once (see _Pending.done).

        A start that is work for this machine's CPUs alone (`starts_on_this_cpu`: a
        popen child of this interpreter, or a forked one) goes to at most as many
        workers as there are CPUs: more at once only contend for them (2 cores: 32 fork
        gateways made in 38 ms instead of 47, 32 plain ones in 223 instead of 261). The
        others (ssh, socket, via=, a python= program) may wait on anything: each gets
        a task of its own. Under gevent/eventlet every bootstrap is a greenlet.
        """
        cooperative = self.execmodel.backend in ("gevent", "eventlet")
        local: List[_Pending] = []
        for pending in pendings:
            if not cooperative and starts_on_this_cpu(pending.spec):
                local.append(pending)
            else:
                self.execmodel.start(self._bootstrap, (pending,))
        if not local:
            return
        with self._lock:
            self._local_starts.extend(local)
            free = _local_start_limit() - self._local_workers
            workers = max(0, min(len(self._local_starts), free))
            self._local_workers += workers
        for _ in range(workers):
            self.execmodel.start(self._local_worker)

    def _local_worker(self) -> None:
        while True:
            with self._lock:
                if not self._local_starts:
                    self._local_workers -= 1
                    return
                pending = self._local_starts.pop(0)
            self._bootstrap(pending)

    def _bootstrap_all(self, pendings: List[_Pending]) -> None:
        """Bootstrap side by side (see _start_bootstraps) and wait for every one."""
        self._start_bootstraps(pendings)
        for pending in pendings:
            pending.done.wait()

    def _prune_exited(self) -> None:
        """Forget exited gateways that have ended (a program may make and exit many)."""
        self._exited = [gw for gw in self._exited if not _has_ended(gw)]

    def gateway_exited(self, gateway: Gateway) -> None:
        """Called by Gateway.exit() (the GatewayRegistry protocol): the gateway leaves the
        group; terminate still reaps it."""
        with self._lock:
            if gateway in self._gateways:
                self._gateways.remove(gateway)
                self._seqs.pop(id(gateway), None)
                self._exited.append(gateway)

    # -- using and ending them -------------------------------------------------------

    def remote_exec(
        self, source: Union[str, Callable[..., Any], ModuleType], **kwargs: Any
    ) -> MultiChannel:
        """Run `source` on every gateway; a MultiChannel of the channels, in group order."""
        return MultiChannel([gateway.remote_exec(source, **kwargs) for gateway in self])

    def terminate(self, timeout: Optional[float] = None) -> TerminateReport:
        """End every gateway and its process; return what it took.

        Each gateway is told to exit (gateways that go `via=` a proxy before the
        proxy), then terminate waits for its receiver and its local process. After
        `timeout` seconds the processes still running are killed; None waits as long
        as it takes. Returns after about twice `timeout` at most, even if a kill
        hangs. Calling it again (or with no gateways) does nothing.

        >>> group = Group(["popen", "popen"])
        >>> report = group.terminate(timeout=30)
        >>> report.exited, report.killed
        (['gw0', 'gw1'], [])
        """
        unclaimed = self._take_prefetched(timeout)
        with self._lock:
            gateways = self._gateways + [gw for gw in self._exited if gw not in self._gateways]
            gateways += [gw for gw in unclaimed if gw not in gateways]
            self._gateways, self._exited = [], []
            self._seqs.clear()
        report = terminate_gateways(gateways, timeout)
        with self._lock:
            # A gateway that could not be ended stays known, so a later call retries.
            unresponsive = set(report.unresponsive)
            self._exited.extend(gw for gw in gateways if gw.id in unresponsive)
        return report


def _has_ended(gateway: Terminable) -> bool:
    """Whether the gateway's receiver and its local child (if any) have both ended."""
    if gateway.hasreceiver():
        return False
    return gateway.child_pid is None or gateway.wait_child(0) is not None


# Groups to end at interpreter exit. Weak: a group nobody uses any more (no references,
# no live gateways) is not kept alive just for this.
_live_groups: weakref.WeakSet[Group] = weakref.WeakSet()


def _terminate_all(timeout: float = ATEXIT_TIMEOUT) -> None:
    for group in list(_live_groups):
        try:
            group.terminate(timeout)
        except Exception as exc:  # a bug: said where a user sees it, and the next group ends
            sys.stderr.write(f"execnet: at exit, terminating {group!r} failed: {exc!r}\n")


atexit.register(_terminate_all)

default_group = Group()


def makegateway(spec: SpecLike | None = None) -> Gateway:
    """Open a gateway in `default_group` (see Group.makegateway).

    >>> from execnet_group import default_group, makegateway
    >>> gw = makegateway("popen")
    >>> gw in default_group, gw.remote_exec("channel.send(7)").receive()
    (True, 7)
    >>> gw.exit()
    """
    return default_group.makegateway(spec)


def set_execmodel(execmodel: str, remote_execmodel: Optional[str] = None) -> None:
    """Set the execution models of `default_group` (before its first gateway; see
    Group.set_execmodel). Not run as a doctest, which may follow gateways made in the
    default group: tests/execnet_group/test_group.py runs it in a fresh interpreter.

    >>> from execnet_group import default_group, set_execmodel
    >>> set_execmodel("thread", "main_thread_only")  # doctest: +SKIP
    >>> default_group.remote_execmodel.backend  # doctest: +SKIP
    'main_thread_only'
    """
    default_group.set_execmodel(execmodel, remote_execmodel)
