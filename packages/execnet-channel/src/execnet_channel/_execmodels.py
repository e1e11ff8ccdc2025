"""Execution models: threads, or eventlet/gevent greenlets, behind one small interface.

Everything else in the channel layer starts tasks, waits and locks only through an
ExecModel, so the same code runs under every model. eventlet and gevent are imported
only when their model is chosen.
"""

from __future__ import annotations

import os
import sys

from ._startup import TYPE_CHECKING, LockEvent, queue_module

if TYPE_CHECKING:
    from types import ModuleType
    from typing import IO, Any, Callable, Dict, Tuple, Union

    from ._protocols import EventLike, LockLike, QueueLike

__all__ = ["EXECMODEL_NAMES", "ExecModel", "get_execmodel"]

EXECMODEL_NAMES = ("thread", "main_thread_only", "eventlet", "gevent")


class ExecModel:
    """How tasks run and wait: ``backend`` names it; the methods are the primitives.

    >>> model = get_execmodel("thread")
    >>> done = model.Event()
    >>> model.start(done.set)
    >>> done.wait(5)
    True
    """

    backend: str = ""
    #: True when waiting must go through the model's hub (greenlets), not block the thread
    cooperative: bool = False

    def __repr__(self) -> str:
        return f"<ExecModel {self.backend!r}>"

    @property
    def queue(self) -> ModuleType:
        """The model's queue module (``queue`` for threads)."""
        raise NotImplementedError

    @property
    def subprocess(self) -> ModuleType:
        """The model's subprocess module."""
        raise NotImplementedError

    @property
    def socket(self) -> ModuleType:
        """The model's socket module."""
        raise NotImplementedError

    def Lock(self) -> LockLike:
        """A new lock of the model (``threading.Lock``, a greenlet semaphore).

        >>> lock = get_execmodel("thread").Lock()
        >>> with lock:
        ...     lock.acquire(False)
        False
        """
        raise NotImplementedError

    def RLock(self) -> LockLike:
        """A new reentrant lock of the model: its holder may acquire it again.

        >>> lock = get_execmodel("thread").RLock()
        >>> with lock, lock:
        ...     pass
        """
        raise NotImplementedError

    def Event(self) -> EventLike:
        """A new event of the model (``threading.Event`` for threads): set, is_set, wait.

        >>> event = get_execmodel("thread").Event()
        >>> event.wait(0), event.set(), event.wait(5)
        (False, None, True)
        """
        raise NotImplementedError

    def start(self, func: Callable[..., object], args: Tuple[Any, ...] = ()) -> None:
        """Run ``func(*args)`` as a new task (a thread or a greenlet); returns at once."""
        raise NotImplementedError

    def sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds the model's way (greenlet models let others run).

        >>> get_execmodel("thread").sleep(0)
        """
        raise NotImplementedError

    def get_ident(self) -> int:
        """An id of the running task (thread or greenlet)."""
        raise NotImplementedError

    def fdopen(self, fd: int, mode: str, bufsize: int = -1, closefd: bool = True) -> IO[Any]:
        """A file object over ``fd`` that waits the model's way."""
        return os.fdopen(fd, mode, bufsize, closefd=closefd)

    def _queue(self) -> QueueLike:
        """A new unbounded FIFO (the fastest the model offers)."""
        raise NotImplementedError

    def _queue_empty(self) -> type[BaseException]:
        """What ``_queue().get(timeout=...)`` raises when nothing came."""
        return self.queue.Empty  # type: ignore[no-any-return]

    def _event(self) -> EventLike:
        """An Event for this layer's own use (set, is_set, wait)."""
        return self.Event()

    def _wait_readable(self, fd: int) -> None:
        """Cooperative models: wait until ``fd`` can be read without blocking the hub."""

    def _wait_writable(self, fd: int) -> None:
        """Wait until ``fd`` (made non-blocking, e.g. by execnet_channel.aio) can be
        written; cooperative models wait without blocking the hub."""
        import select

        try:
            poller = select.poll()
        except AttributeError:  # no poll(): select() works everywhere
            select.select([], [fd], [])
            return
        poller.register(fd, select.POLLOUT)
        poller.poll()


class ThreadExecModel(ExecModel):
    """OS threads; the remote runs the first task in its main thread."""

    backend = "thread"

    @property
    def queue(self) -> ModuleType:
        import queue

        return queue

    @property
    def subprocess(self) -> ModuleType:
        import subprocess

        return subprocess

    @property
    def socket(self) -> ModuleType:
        import socket

        return socket

    # A remote's start does not import threading and queue: while they are not
    # imported, their C primitives stand in (_startup).

    def Lock(self) -> LockLike:
        threading: Any = sys.modules.get("threading")
        if threading is None:
            import _thread

            return _thread.allocate_lock()
        return threading.Lock()  # type: ignore[no-any-return]

    def RLock(self) -> LockLike:
        threading: Any = sys.modules.get("threading")
        if threading is None:
            import _thread

            rlock = getattr(_thread, "RLock", None)  # what threading.RLock() returns
            if rlock is not None:
                return rlock()  # type: ignore[no-any-return]
            threading = __import__("threading")
        return threading.RLock()  # type: ignore[no-any-return]

    def Event(self) -> EventLike:
        import threading

        return threading.Event()

    def start(self, func: Callable[..., object], args: Tuple[Any, ...] = ()) -> None:
        import _thread

        _thread.start_new_thread(func, args)

    def sleep(self, delay: float) -> None:
        import time

        time.sleep(delay)

    def get_ident(self) -> int:
        import _thread

        return _thread.get_ident()

    def _queue(self) -> QueueLike:
        return queue_module().SimpleQueue()  # type: ignore[no-any-return]

    def _queue_empty(self) -> type[BaseException]:
        return queue_module().Empty  # type: ignore[no-any-return]

    def _event(self) -> EventLike:
        if "threading" in sys.modules:
            return self.Event()
        return LockEvent()


class MainThreadOnlyExecModel(ThreadExecModel):
    """Threads, but the remote runs every task in its main thread, one at a time."""

    backend = "main_thread_only"


class EventletExecModel(ExecModel):
    """eventlet greenlets (eventlet is imported when this model is chosen)."""

    backend = "eventlet"
    cooperative = True

    def __init__(self) -> None:
        import eventlet  # noqa: F401 - fail early, at get_execmodel(), when it is missing

    @property
    def queue(self) -> ModuleType:
        import eventlet.queue

        return eventlet.queue  # type: ignore[no-any-return]

    @property
    def subprocess(self) -> ModuleType:
        import eventlet.green.subprocess

        return eventlet.green.subprocess  # type: ignore[no-any-return]

    @property
    def socket(self) -> ModuleType:
        import eventlet.green.socket

        return eventlet.green.socket  # type: ignore[no-any-return]

    def Lock(self) -> LockLike:
        import eventlet.semaphore

        return eventlet.semaphore.Semaphore()  # type: ignore[no-any-return]

    def RLock(self) -> LockLike:
        import eventlet.green.threading

        return eventlet.green.threading.RLock()  # type: ignore[no-any-return]

    def Event(self) -> EventLike:
        import eventlet.green.threading

        return eventlet.green.threading.Event()  # type: ignore[no-any-return]

    def start(self, func: Callable[..., object], args: Tuple[Any, ...] = ()) -> None:
        import eventlet

        eventlet.spawn_n(func, *args)

    def sleep(self, delay: float) -> None:
        import eventlet

        eventlet.sleep(delay)

    def get_ident(self) -> int:
        import eventlet.green.thread

        return eventlet.green.thread.get_ident()  # type: ignore[no-any-return]

    def fdopen(self, fd: int, mode: str, bufsize: int = -1, closefd: bool = True) -> IO[Any]:
        import eventlet.greenio

        return eventlet.greenio.GreenPipe(fd, mode, bufsize)  # type: ignore[no-any-return]

    def _queue(self) -> QueueLike:
        import eventlet.queue

        return eventlet.queue.LightQueue()  # type: ignore[no-any-return]

    def _wait_readable(self, fd: int) -> None:
        from eventlet.hubs import trampoline

        trampoline(fd, read=True)

    def _wait_writable(self, fd: int) -> None:
        from eventlet.hubs import trampoline

        trampoline(fd, write=True)


class GeventExecModel(ExecModel):
    """gevent greenlets (gevent is imported when this model is chosen)."""

    backend = "gevent"
    cooperative = True

    def __init__(self) -> None:
        import gevent  # noqa: F401 - fail early, at get_execmodel(), when it is missing

    @property
    def queue(self) -> ModuleType:
        import gevent.queue

        return gevent.queue  # type: ignore[no-any-return]

    @property
    def subprocess(self) -> ModuleType:
        import gevent.subprocess

        return gevent.subprocess  # type: ignore[no-any-return]

    @property
    def socket(self) -> ModuleType:
        import gevent.socket

        return gevent.socket  # type: ignore[no-any-return]

    def Lock(self) -> LockLike:
        import gevent.lock

        return gevent.lock.Semaphore()  # type: ignore[no-any-return]

    def RLock(self) -> LockLike:
        import gevent.lock

        return gevent.lock.RLock()  # type: ignore[no-any-return]

    def Event(self) -> EventLike:
        import gevent.event

        return gevent.event.Event()  # type: ignore[no-any-return]

    def start(self, func: Callable[..., object], args: Tuple[Any, ...] = ()) -> None:
        import gevent

        gevent.spawn(func, *args)

    def sleep(self, delay: float) -> None:
        import gevent

        gevent.sleep(delay)

    def get_ident(self) -> int:
        import gevent.thread

        return gevent.thread.get_ident()  # type: ignore[no-any-return]

    def fdopen(self, fd: int, mode: str, bufsize: int = -1, closefd: bool = True) -> IO[Any]:
        import gevent.fileobject

        return gevent.fileobject.FileObjectThread(  # type: ignore[no-any-return]
            fd, mode, bufsize, close=closefd
        )

    def _queue(self) -> QueueLike:
        import gevent.queue

        return gevent.queue.SimpleQueue()  # type: ignore[no-any-return]

    def _wait_readable(self, fd: int) -> None:
        import gevent.socket

        gevent.socket.wait_read(fd)

    def _wait_writable(self, fd: int) -> None:
        import gevent.socket

        gevent.socket.wait_write(fd)


_MODELS: Dict[str, Callable[[], ExecModel]] = {
    "thread": ThreadExecModel,
    "main_thread_only": MainThreadOnlyExecModel,
    "eventlet": EventletExecModel,
    "gevent": GeventExecModel,
}
_cache: Dict[str, ExecModel] = {}


def get_execmodel(name_or_model: Union[str, ExecModel]) -> ExecModel:
    """The execution model named ``name_or_model`` (an ExecModel is returned as is).

    >>> get_execmodel("thread").backend
    'thread'
    >>> get_execmodel("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown execmodel 'nope'; valid: thread, main_thread_only, eventlet, gevent
    """
    if isinstance(name_or_model, ExecModel):
        return name_or_model
    model = _cache.get(name_or_model) if isinstance(name_or_model, str) else None
    if model is not None:
        return model
    factory = _MODELS.get(name_or_model) if isinstance(name_or_model, str) else None
    if factory is None:
        raise ValueError(
            f"unknown execmodel {name_or_model!r}; valid: {', '.join(EXECMODEL_NAMES)}"
        )
    model = _cache[name_or_model] = factory()
    return model
