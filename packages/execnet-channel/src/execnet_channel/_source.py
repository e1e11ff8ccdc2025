"""What remote_exec sends (a source and where it came from) and how the remote runs it."""

from __future__ import annotations

import _thread
import types

from ._startup import TYPE_CHECKING, compile_source, defer_lines, install_lines
from ._trace import trace

if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["REMOTE_EXEC_FILENAME", "ExecSpec", "compile_spec", "format_failure", "make_spec"]

# The remote side only compiles: inspect, dis, re and textwrap are imported by the sender
# (make_spec), linecache when a traceback needs lines (_startup); they are slow to import.


class ExecSpec:
    """The payload of an exec frame: what remote_exec sends and serve() runs.

    >>> spec = ExecSpec("channel.send(1)", "", 1, None, {})
    >>> spec.payload()
    ('channel.send(1)', '', 1, None, {})
    >>> ExecSpec(*spec.payload()).source
    'channel.send(1)'
    """

    __slots__ = ("callname", "filename", "firstlineno", "kwargs", "module", "source")

    def __init__(  # noqa: PLR0917  (the fields of the frame, in its order)
        self,
        source: str,
        filename: str,
        firstlineno: int,
        callname: Optional[str],
        kwargs: Dict[str, Any],
        module: Optional[str] = None,
    ) -> None:
        self.source = source
        self.filename = filename  # "" for a string source: the remote names it "<remote exec>"
        self.firstlineno = firstlineno
        self.callname = callname  # a function's name: called as f(channel, **kwargs)
        self.kwargs = kwargs
        # the function's module when the remote may import it (allowed imports): the
        # function then runs with that module's globals; absent from the frame if None
        self.module = module

    def payload(self) -> Tuple[Any, ...]:
        """The tuple a CHANNEL_EXEC frame carries; ``ExecSpec(*payload)`` reads it back.

        Five fields as in execnet 2.1.2, a sixth (the module) only when it is set.
        """
        fields = (self.source, self.filename, self.firstlineno, self.callname, self.kwargs)
        return fields if self.module is None else (*fields, self.module)

    def __repr__(self) -> str:
        return f"ExecSpec{self.payload()!r}"


def make_spec(source: object, kwargs: Dict[str, Any], module_globals: bool = False) -> ExecSpec:
    """Check ``source`` for remote_exec and describe it; errors before anything is sent.

    ``module_globals``: a function may use its module's global names (the remote imports
    that module on demand and runs the function with its globals).
    """
    import textwrap

    if isinstance(source, types.FunctionType):
        import inspect
        import re

        _check_function(source, module_globals)
        try:
            lines, firstlineno = inspect.getsourcelines(source)
        except (OSError, TypeError) as exc:
            raise ValueError(
                f"remote_exec needs the source of function {source.__name__!r}: {exc}"
            ) from None
        # decorators would run remotely without their names: start at the def
        for index, line in enumerate(lines):
            if re.match(r"(async\s+)?def\s", line.lstrip()):
                lines, firstlineno = lines[index:], firstlineno + index
                break
        filename = inspect.getsourcefile(source) or source.__code__.co_filename
        return ExecSpec(
            textwrap.dedent("".join(lines)), filename, firstlineno, source.__name__, kwargs
        )
    if kwargs:
        raise TypeError(
            f"remote_exec keyword arguments need a function source, not a "
            f"{type(source).__name__} (got {sorted(kwargs)})"
        )
    if isinstance(source, types.ModuleType):
        filename, text = _module_source(source)
        return ExecSpec(text, filename, 1, None, {})
    if isinstance(source, str):
        return ExecSpec(textwrap.dedent(source), "", 1, None, {})
    raise TypeError(
        f"remote_exec source must be a string, a function or a module, not {type(source).__name__}"
    )


# The source of each module sent so far, so that a module whose file is deleted (or
# moved) after its import still travels as it did before (WeakKeyDictionary, made on
# first use: the remote side never sends modules).
_module_sources: Any = None


def _module_source(module: types.ModuleType) -> Tuple[str, str]:
    """(file name, source) of a module for remote_exec.

    Read from its file; if that is gone, the source this process already had: the one
    sent before, or the lines linecache held (which inspect would discard first).
    """
    global _module_sources
    import inspect
    import linecache
    import weakref

    if _module_sources is None:
        _module_sources = weakref.WeakKeyDictionary()
    try:
        filename = inspect.getsourcefile(module) or getattr(module, "__file__", "") or ""
    except TypeError:  # a built-in module
        filename = ""
    cached_lines = linecache.cache.get(filename) if filename else None
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError) as exc:
        known = _module_sources.get(module)
        if known is not None:
            trace(f"remote_exec: {exc}; sending the source of {module.__name__} sent before")
            return known  # type: ignore[no-any-return]
        # a linecache entry: (size, mtime, lines, name)
        if cached_lines is not None and len(cached_lines) == 4 and cached_lines[2]:
            trace(f"remote_exec: {exc}; sending the lines linecache held for {filename}")
            text = "".join(cached_lines[2])
        else:
            raise OSError(
                f"remote_exec needs the source of module {module.__name__!r} "
                f"({filename or 'no file'}): {exc}"
            ) from None
    _module_sources[module] = (filename, text)
    return filename, text


def _check_function(func: types.FunctionType, module_globals: bool = False) -> None:
    import builtins

    name = func.__name__
    if name == "<lambda>":
        raise ValueError("remote_exec cannot send a lambda: use a def function or a string")
    if func.__closure__:
        free = ", ".join(func.__code__.co_freevars)
        raise ValueError(f"remote_exec function {name!r} is a closure (over {free})")
    code = func.__code__
    if code.co_argcount < 1 or code.co_varnames[0] != "channel":
        raise ValueError(f"remote_exec function {name!r} must take 'channel' as first parameter")
    for global_name in [] if module_globals else sorted(set(_global_names(code))):
        if not hasattr(builtins, global_name):
            raise ValueError(
                f"remote_exec function {name!r} uses the global name {global_name!r}; only "
                "builtins travel (import inside the function instead)"
            )


def _global_names(code: types.CodeType) -> Iterator[str]:
    import dis

    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            yield str(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


#: The file name of code sent as a string, in tracebacks and inspect.stack() (as in
#: execnet 2.1.2, whose users match on it).
REMOTE_EXEC_FILENAME = "<remote exec>"


def compile_spec(spec: ExecSpec) -> types.CodeType:
    """The code object for ``spec``, with the real file name and line numbers.

    When that file does not exist here, its lines are put in linecache so tracebacks
    show them. A string source is named ``<remote exec>``; every task's string has that
    name, so its lines reach only the traceback of its own failure (format_failure).
    """
    filename = spec.filename or REMOTE_EXEC_FILENAME
    text = "\n" * (spec.firstlineno - 1) + spec.source
    code = compile_source(text, filename)
    if not spec.filename:
        return code
    lines = text.splitlines(True)
    if not _same_lines(filename, lines, spec.firstlineno):
        # the file is not here (or differs): tracebacks show the lines that ran
        defer_lines(filename, (len(text), None, lines, filename))
    return code


def _same_lines(filename: str, lines: List[str], firstlineno: int) -> bool:
    try:
        with open(filename, encoding="utf-8") as file:
            on_disk = file.readlines()
    except (OSError, ValueError):  # not here, or not UTF-8: use the lines that ran
        return False
    start = firstlineno - 1
    on_disk = on_disk[start : len(lines)]
    return [line.strip() for line in on_disk] == [line.strip() for line in lines[start:]]


# Held while a failed string task's lines stand in linecache under the shared name.
_format_lock = _thread.allocate_lock()
_FORMAT_WAIT = 2.0  # seconds; formatting takes milliseconds, so only a stuck holder waits this


def format_failure(spec: ExecSpec, error: BaseException) -> str:
    """The traceback text of a task that raised ``error``, with the lines that ran.

    The frames of a string source show its lines: they stand in linecache under
    ``<remote exec>`` only while this text is made (one failing task at a time).
    """
    install_lines()
    import linecache
    import traceback

    tb = error.__traceback__
    if spec.filename:
        return "".join(traceback.format_exception(type(error), error, tb))
    text = "\n" * (spec.firstlineno - 1) + spec.source
    entry = (len(text), None, text.splitlines(True), REMOTE_EXEC_FILENAME)
    # A bounded wait: under gevent/eventlet a task switch while the lock is held
    # (nothing here should switch) must not hang the thread.
    locked = _format_lock.acquire(True, _FORMAT_WAIT)
    if not locked:
        trace(
            f"format_failure: another failure's lines held {REMOTE_EXEC_FILENAME!r} for "
            f"{_FORMAT_WAIT} s; formatting this one anyway (its frames may show those lines)"
        )
    previous = linecache.cache.get(REMOTE_EXEC_FILENAME)
    linecache.cache[REMOTE_EXEC_FILENAME] = entry
    try:
        return "".join(traceback.format_exception(type(error), error, tb))
    finally:
        if previous is None:
            linecache.cache.pop(REMOTE_EXEC_FILENAME, None)
        else:
            linecache.cache[REMOTE_EXEC_FILENAME] = previous
        if locked:
            _format_lock.release()
