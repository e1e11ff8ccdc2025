"""The remote serve loop: run the code the opener sends, until it says goodbye."""

from __future__ import annotations

import os
import sys

from . import _frames
from ._channel import Channel
from ._frames import DEFAULT_MAX_FRAME
from ._gateway import BaseGateway
from ._source import ExecSpec, compile_spec, format_failure
from ._startup import TYPE_CHECKING, in_main_thread
from ._trace import trace, trace_enabled

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from ._protocols import IO, QueueLike

    _Task = Optional[Tuple[Channel, ExecSpec]]

__all__ = ["serve"]

EXIT_GRACE = 2.0  # seconds a terminating process gives hung user code before os._exit
_exit = os._exit  # the real one (output forwarding replaces os._exit while on)


class _ServingGateway(BaseGateway):
    """The gateway the serve loop runs: executes what arrives, one task per channel."""

    _receiver_name = "serve receiver"

    def __init__(self, io: IO, id: str, *, exit_process: bool, max_frame: int) -> None:
        model = io.execmodel
        self._main_only = model.backend == "main_thread_only"
        self._exit_process = exit_process
        self._tasks: QueueLike = model._queue()
        self._state = model.Lock()
        self._main_busy: Optional[Channel] = None
        self._waiting: List[Tuple[Channel, ExecSpec]] = []  # a few at most
        self._main_ident = 0  # the thread serve_main runs tasks in
        self._main_blocked = False  # main_thread_only: its task waits for the opener
        self._executing = 0
        self._stopping = False
        self._in_main_thread = not model.cooperative and in_main_thread()
        self._forwarder: Any = None  # an _output.Forwarder once the opener asked for it
        super().__init__(io, id, opener=False, max_frame=max_frame)
        if self._main_only:
            self._watch_wait = self._main_task_waits

    def _numexecuting(self) -> int:
        return self._executing

    def _on_exec(self, channel: Channel, spec: ExecSpec) -> None:
        with self._state:
            if self._stopping:
                refuse = True
            elif self._main_busy is None:
                self._main_busy = channel
                self._executing += 1
                self._tasks.put((channel, spec))
                return
            elif self._main_only and not self._main_blocked:
                # The running task may be about to end (its last item sent, its close
                # not yet): this one runs after it, unless it starts waiting for the
                # opener (_main_task_waits), which may be waiting for this one.
                self._waiting.append((channel, spec))
                return
            elif self._main_only:
                refuse = True
            else:
                self._executing += 1
                refuse = False
        if refuse:
            if self._stopping:
                channel._close(f"gateway {self.id!r} is terminating; remote_exec refused")
            else:
                self._refuse_concurrent(channel)
            return
        self.execmodel.start(self._run_in_task, (channel, spec))

    def _main_task_waits(
        self, wait: Callable[[Optional[float]], Any], timeout: Optional[float]
    ) -> Any:
        """``wait(timeout)`` for a channel of a main_thread_only task (Channel calls it
        when an item or a close is to come from the opener). While the main thread's task
        waits for the opener, the opener may be waiting for a task queued behind it: such
        a task is refused (one queued now, and any arriving until the wait ends)."""
        if self.execmodel.get_ident() != self._main_ident:
            return wait(timeout)  # a thread the task started: the main thread goes on
        with self._state:
            self._main_blocked = True
            queued = [channel for channel, _ in self._waiting]
            self._waiting.clear()
        for channel in queued:
            self._refuse_concurrent(channel)
        try:
            return wait(timeout)
        finally:
            self._main_blocked = False

    def _refuse_concurrent(self, channel: Channel) -> None:
        busy = self._main_busy
        running = f"channel {busy.id}" if busy is not None else "another task"
        channel._close(
            f"main_thread_only execmodel: gateway {self.id!r} is executing {running}, "
            "which waits for the other side; running a second remote_exec concurrently "
            "would deadlock, so it is refused (wait for the first to finish)"
        )

    def _run_in_task(self, channel: Channel, spec: ExecSpec) -> None:
        error = _execute(channel, spec)
        with self._state:
            self._executing -= 1
        _finish(channel, error)

    def serve_main(self) -> None:
        """Run tasks in this (the main) thread until the connection ends."""
        self._main_ident = self.execmodel.get_ident()
        while True:
            try:
                task: _Task = self._tasks.get()
                if task is None:
                    return
                channel, spec = task
                error = _execute(channel, spec)
                with self._state:
                    self._executing -= 1
                    self._main_busy = None
                    if self._waiting and not self._stopping:
                        waiting = self._waiting.pop(0)
                        self._main_busy = waiting[0]
                        self._executing += 1
                        self._tasks.put(waiting)
                _finish(channel, error)
            except KeyboardInterrupt:
                if self._stopping:
                    return
                raise

    def _on_output_control(self, kind: int, channel_id: int, payload: memoryview) -> None:
        if kind == _frames.OUTPUT_ACK:
            if channel_id <= 0:
                raise ValueError(f"an ack of {channel_id} bytes")
            if self._forwarder is not None:
                self._forwarder.acked(channel_id)
            return
        output, level, opener_pid = self._loads(payload)
        if level is not None and (type(level) is not int or level < 0):
            raise ValueError(f"log level {level!r}")
        if opener_pid == os.getpid():
            # both ends in one process (tests): its fds are the opener's too
            trace(f"gateway {self.id}: output forwarding ignored (the opener's own process)")
            return
        if self._forwarder is None:
            from ._output import Forwarder

            self._forwarder = Forwarder(self)
        self._forwarder.configure(bool(output), level)

    def _on_terminate(self) -> None:
        self._stop(terminated=True)

    def _after_connection_lost(self) -> None:
        self._stop()

    def _stop(self, terminated: bool = False) -> None:
        with self._state:
            if self._stopping:
                return
            self._stopping = True
            busy = self._main_busy is not None
            idle = not busy and self._executing == 0
            waiting = list(self._waiting)
            self._waiting.clear()
        for channel, _ in waiting:
            channel._close(f"gateway {self.id!r} is terminating; remote_exec refused")
        if terminated and self._forwarder is not None:
            self._forwarder.finish()  # now: sends fail once the receiver has ended
        if trace_enabled():
            trace(f"gateway {self.id}: stopping (main thread busy: {busy})")
        if self._exit_process and terminated and idle:
            # No task runs that could still send: the opener sees the end now, not once
            # the main thread has woken up and returned.
            self._close_write()
        self._tasks.put(None)
        if self._exit_process:
            _start_exit_watchdog()
            if busy and self._in_main_thread:
                _interrupt_main()

    def _close_write(self) -> None:
        """Close the sending direction for good (idempotent; under the write lock, so
        no frame is cut and no reused descriptor is closed); forwarded output still in
        the pipes is sent first."""
        if self._forwarder is not None:
            self._forwarder.finish()
        with self._writelock:
            self._exited = True
            self._closed_for_sending = True
            self._io.close_write()


def _execute(channel: Channel, spec: ExecSpec) -> Optional[str]:
    """Run one task; the text of its traceback if it failed."""
    channel._executing = True
    try:
        code = compile_spec(spec)
        namespace: Dict[str, Any] = {}
        if spec.module is not None:
            namespace.update(_module_globals(channel, spec.module))
        namespace["channel"] = channel
        namespace["__name__"] = "__channelexec__"
        exec(code, namespace)
        if spec.callname is not None:
            function = namespace[spec.callname]
            if function.__code__.co_flags & _CO_COROUTINE:
                from .aio import run_remote  # asyncio is imported only now

                run_remote(function, channel, spec.kwargs)
            else:
                function(channel, **spec.kwargs)
    except BaseException as error:
        tb = error.__traceback__
        # the traceback starts in the user's code, not in this function
        return format_failure(spec, error.with_traceback(tb.tb_next if tb else None))
    finally:
        channel._executing = False
    return None


def _module_globals(channel: Channel, name: object) -> Dict[str, Any]:
    """The globals of the module a function sent by remote_exec comes from, imported on
    demand (the opener allows it): a copy, so the task's own names stay its own."""
    importer = channel.gateway._importer
    if type(name) is not str or importer is None or name.partition(".")[0] not in importer.allowed:
        return {}
    module = sys.modules.get(name)
    if module is None:
        import importlib

        module = importlib.import_module(name)
    return dict(module.__dict__)


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE (inspect is slow to import): an `async def`


def _finish(channel: Channel, error: Optional[str]) -> None:
    channel._close(error)


def _interrupt_main() -> None:
    import signal
    import threading

    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            ident = threading.main_thread().ident
            if ident is not None:
                signal.pthread_kill(ident, signal.SIGINT)  # wakes sleeps, unlike interrupt_main
                return
    except (AttributeError, OSError, ValueError):
        pass
    import _thread

    _thread.interrupt_main()


def _start_exit_watchdog() -> None:
    import _thread
    import time

    def watchdog() -> None:
        time.sleep(EXIT_GRACE)
        try:
            sys.stderr.flush()
        finally:
            _exit(1)

    _thread.start_new_thread(watchdog, ())


def preload(execmodel: str = "thread") -> None:
    """Import now what ``serve`` with `execmodel` would import on its first use.

    The thread models' task queue lives in an extension module that an interpreter
    which only serves a gateway need not import at start; ``mmap`` makes the receive
    buffer an anonymous mapping (untouched pages until data arrives). A fork server (execnet-
    transport's ``popen//fork``) calls this once before it forks: each forked child then
    finds it imported, instead of importing it itself, which would load a shared library
    and copy hundreds of the memory pages the child shares with its server.

    >>> preload("thread")
    >>> import sys
    >>> "_queue" in sys.modules or "queue" in sys.modules
    True
    """
    import mmap  # noqa: F401  (the receive buffer is an anonymous mmap where it is imported)

    from ._execmodels import get_execmodel

    get_execmodel(execmodel)._queue()


def serve(io: IO, id: str, *, exit_process: bool = True, max_frame: Optional[int] = None) -> None:
    """Serve the opener over ``io``: run what it sends until it terminates or goes away.

    With the ``thread`` model the first task runs in the calling thread (the main
    thread, so GUI loops work) and concurrent ones in new threads;
    ``main_thread_only`` runs every task here and refuses a second concurrent one.
    With ``exit_process`` a terminating process exits within seconds even if user code
    hangs (``os._exit`` after a grace period), and the sending direction is closed
    before the process shuts down (at once on GATEWAY_TERMINATE when no task runs), so
    the opener sees the end without waiting for atexit handlers or module teardown,
    which still run; tests running both ends in one process pass ``exit_process=False``
    (both directions are closed when the loop ends). ``max_frame``: the largest frame
    payload this end sends or accepts (see BaseGateway; None: ``DEFAULT_MAX_FRAME``);
    a transport passes the opener's limit in the bootstrap config.

    >>> serve(StdioIO.from_process("thread"), "gw0")   # doctest: +SKIP
    """
    if max_frame is None:
        max_frame = DEFAULT_MAX_FRAME
    gateway = _ServingGateway(io, id, exit_process=exit_process, max_frame=max_frame)
    if trace_enabled():
        trace(f"gateway {id}: serving with {io.execmodel.backend} model, pid {os.getpid()}")
    try:
        gateway.serve_main()
    finally:
        if trace_enabled():
            trace(f"gateway {id}: serve loop ends")
        if exit_process:
            gateway._close_write()  # the opener sees the end before this process's
        else:  # shutdown (atexit, threads, module teardown)
            _close_io(gateway, io)


def _close_io(gateway: _ServingGateway, io: Any) -> None:
    gateway._close_write()
    io.close_read()
