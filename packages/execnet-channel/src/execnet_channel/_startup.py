"""The start-up tricks of the channel layer, gathered in one place.

Every popen gateway (and every pytest-xdist worker) starts an interpreter that imports
this package and runs ``serve()``; a popen gateway's whole start is about 25 ms. A module
that code imports on that path costs every start its import. The tricks below keep
the modules off the path that cost at least 0.5 ms there; a trick that saved less
was dropped (``types``: 0.2 ms on 3.8, nothing on 3.12, where it is loaded anyway).
Figures: a fresh interpreter that has imported the travelling packages, then the step
alone (benchmarks/README.md, "Start-up tricks we keep"); tests/execnet_channel/
test_lean_import.py checks that none of these modules loads on a remote's path.

What a start avoids, what that saves (CPython 3.12 / 3.8), and the stand-in:

- importing ``typing`` (18 / 9 ms): ``TYPE_CHECKING`` below; annotations are checked by
  mypy, never evaluated; the Protocols (``_protocols``) load on first use;
- importing ``threading`` (2.2 / 0.4 ms): ``LockEvent``, ``_thread``'s locks,
  ``in_main_thread``;
- importing ``queue`` (2.9 / 1.9 ms): ``queue_module()``, ``_queue``'s SimpleQueue;
- importing ``linecache`` (10 / 7 ms): ``defer_lines``/``install_lines``;
- importing ``contextlib`` (2.4 / 2.1 ms): ``try: ... except OSError: pass`` (ruff's
  SIM105 is off for the travelling packages);
- building ``ast``'s classes at the first compile() (0.9 / 0.6 ms, on every CPython
  from 3.8 to 3.13, unless something compiled before): ``compile_source``.

No ``from __future__ import annotations`` here: exec() compiles with the future flags of
the frame that calls it, and ``_compiled_by_exec`` must give user code none of them (as
``compile(..., dont_inherit=True)`` does). Annotations naming typing-only names are
strings.
"""

import _thread
import sys

#: False at run time; mypy takes every ``if TYPE_CHECKING:`` block as true. Each module
#: of the package imports it from here instead of from ``typing``.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from typing import Any, Dict, List, Optional

__all__ = [
    "TYPE_CHECKING",
    "LockEvent",
    "compile_source",
    "defer_lines",
    "in_main_thread",
    "install_lines",
    "queue_module",
]


# -- threading and queue -------------------------------------------------------------
# While threading and queue are not imported, nothing can have patched them (gevent's
# monkey-patching imports what it patches), and their C primitives are what they would
# return: _thread.allocate_lock, _thread.RLock, _queue.SimpleQueue.


class LockEvent:
    """threading.Event's set/is_set/wait on one _thread lock, held while unset.

    For the thread models while threading is not imported. Every waiter that gets the
    lock releases it again, so once set it stays released.

    >>> event = LockEvent()
    >>> event.wait(0), event.set(), event.wait(), event.is_set()
    (False, None, True, True)
    """

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def is_set(self) -> bool:
        """True once set() was called."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._flag = True
        self._release()

    def wait(self, timeout: "Optional[float]" = None) -> bool:
        """Wait until set (at most ``timeout`` seconds); the flag."""
        if self._flag:
            return True
        if timeout is None:
            got = self._lock.acquire()
        elif timeout > 0:
            got = self._lock.acquire(True, timeout)
        else:
            got = self._lock.acquire(False)
        if got:
            self._release()
        return self._flag

    def _release(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # released already (set twice, or a waiter's release crossed a set)


def queue_module() -> "Any":
    """``queue``, or while it is not imported ``_queue`` (the same SimpleQueue and Empty).

    >>> queue_module().SimpleQueue().qsize()
    0
    """
    module = sys.modules.get("queue")
    if module is None:
        try:
            module = __import__("_queue")
        except ImportError:  # an interpreter without _queue
            module = __import__("queue")
    return module


def in_main_thread() -> bool:
    """True in the interpreter's main thread (without importing threading while no other
    thread exists).

    >>> in_main_thread() in (True, False)
    True
    """
    if "threading" not in sys.modules and getattr(_thread, "_count", lambda: 1)() == 0:
        return True  # no other thread exists
    import threading

    return threading.current_thread() is threading.main_thread()


# -- linecache -----------------------------------------------------------------------

# linecache entries of compiled sources, kept here until a traceback is formatted.
_pending_lines: "Dict[str, Any]" = {}


def defer_lines(filename: str, entry: "Any") -> None:
    """Put ``entry`` (a linecache entry) under ``filename`` in linecache, now if it is
    imported, else at the next install_lines().

    >>> defer_lines("<example>", (6, None, ["x = 1\\n"], "<example>"))
    >>> install_lines()
    >>> import linecache
    >>> linecache.getline("<example>", 1)
    'x = 1\\n'
    """
    # (another thread may be importing linecache: a module without `cache` yet)
    cache = getattr(sys.modules.get("linecache"), "cache", None)
    if cache is None:
        _pending_lines[filename] = entry
    else:
        cache[filename] = entry


def install_lines() -> None:
    """Put the deferred lines in linecache: call it before formatting a traceback."""
    import linecache

    while _pending_lines:
        filename, entry = _pending_lines.popitem()
        linecache.cache[filename] = entry


# -- compile() -----------------------------------------------------------------------

# CPython's first compile() makes the ``ast`` module's ~120 node classes (it checks
# whether its argument is an AST): 0.6-0.9 ms of a remote's first remote_exec on 3.8-3.13,
# measured in fresh interpreters (-S: nothing else compiled before). exec() of a string
# does not check, so a fresh interpreter never builds them; PyPy's compile() is as fast
# either way. Where something compiled already, the exec() way costs 0.03 ms more.
_BY_EXEC = sys.implementation.name == "cpython"


def compile_source(text: str, filename: str) -> "types.CodeType":
    """``compile(text, filename, "exec", dont_inherit=True)``, fast on a fresh interpreter.

    Where compile() would first build the ast classes (above), and while no trace or
    profile function is set, the code object exec() compiled is taken from its first
    frame before any of it runs, and given the right file name. Not where greenlets run
    (gevent, eventlet: `greenlet` imported): they share their thread's trace function,
    and one switched to while it is set would run under it.

    >>> code = compile_source("x = 6 * 7\\n", "<example>")
    >>> namespace = {}
    >>> exec(code, namespace); namespace["x"], code.co_filename
    (42, '<example>')
    """
    if (
        _BY_EXEC
        and sys.gettrace() is None
        and sys.getprofile() is None
        and "greenlet" not in sys.modules
    ):
        code = _compiled_by_exec(text)
        if code is not None:
            import _imp

            _imp._fix_co_filename(code, filename)  # type: ignore[attr-defined] # nested too
            return code
    return compile(text, filename, "exec", dont_inherit=True)


class _Compiled(BaseException):
    """Stops the exec() in _compiled_by_exec at its first frame."""


def _compiled_by_exec(text: str) -> "Optional[types.CodeType]":
    """The code object exec() compiles for ``text`` (named "<string>"); none of it runs.

    The trace function sees the call of the module-level frame (the only frame whose
    globals are the fresh dict given to exec; other calls, such as a weakref callback
    run by the garbage collector meanwhile, are let be) and raises before its first
    line. None when that did not happen: a SyntaxError or ValueError (compile() then
    raises it with the right file name), or anything odd (traced). Without builtins,
    even code that somehow ran could not reach anything.
    """
    namespace: Dict[str, Any] = {"__builtins__": {}}
    found: List[types.CodeType] = []

    def grab(frame: "types.FrameType", event: str, arg: object) -> None:
        if event == "call" and frame.f_globals is namespace and not found:
            found.append(frame.f_code)
            raise _Compiled

    sys.settrace(grab)
    try:
        exec(text, namespace)
    except _Compiled:
        pass
    except (SyntaxError, ValueError):
        return None  # compile() raises it again, naming the file
    except Exception as exc:
        from ._trace import trace

        trace(f"compile_source: exec() raised {exc!r}; compiling with compile()")
        return None
    finally:
        sys.settrace(None)
    return found[0] if found else None
