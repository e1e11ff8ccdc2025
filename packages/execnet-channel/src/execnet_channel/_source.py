"""What remote_exec sends (a source and where it came from) and how the remote runs it."""

# No `from __future__ import annotations` here: exec() compiles with the future flags of
# the frame that calls it, and _compiled_by_exec must give user code none of them
# (as compile(..., dont_inherit=True) does). Annotations naming typing-only names are
# written as strings.

import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

__all__ = ["REMOTE_EXEC_FILENAME", "ExecSpec", "compile_spec", "format_failure", "make_spec"]


if TYPE_CHECKING:
    _FunctionType = types.FunctionType
    _ModuleType = types.ModuleType
    _CodeType = types.CodeType
else:  # the same without importing types on a remote's start

    def _function():
        pass

    _FunctionType = type(_function)
    _ModuleType = type(sys)
    _CodeType = type(_function.__code__)

# The remote side only compiles: inspect, dis, re and textwrap are imported by the sender
# (make_spec), linecache when a traceback needs lines; they are slow to import.


if TYPE_CHECKING:

    class ExecSpec(NamedTuple):
        """The payload of an exec frame."""

        source: str
        filename: str  # "" for a string source: the remote names it "<remote exec>"
        firstlineno: int
        callname: Optional[str]  # a function's name: called as f(channel, **kwargs)
        kwargs: Dict[str, Any]
        # the function's module when the remote may import it (allowed imports): the
        # function then runs with that module's globals; absent from the frame if None
        module: Optional[str] = None

else:
    # The same as a NamedTuple without importing typing (or collections) at run time.
    class ExecSpec(tuple):
        """The payload of an exec frame."""

        __slots__ = ()

        def __new__(cls, source, filename, firstlineno, callname, kwargs, module=None):  # noqa: PLR0917
            return tuple.__new__(cls, (source, filename, firstlineno, callname, kwargs, module))

        source = property(lambda self: self[0])
        filename = property(lambda self: self[1])
        firstlineno = property(lambda self: self[2])
        callname = property(lambda self: self[3])
        kwargs = property(lambda self: self[4])
        module = property(lambda self: self[5])


def make_spec(source: object, kwargs: "Dict[str, Any]", module_globals: bool = False) -> ExecSpec:
    """Check ``source`` for remote_exec and describe it; errors before anything is sent.

    ``module_globals``: a function may use its module's global names (the remote imports
    that module on demand and runs the function with its globals).
    """
    import textwrap

    if isinstance(source, _FunctionType):
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
    if isinstance(source, _ModuleType):
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
_module_sources: "Any" = None


def _module_source(module: "types.ModuleType") -> "Tuple[str, str]":
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
            return known  # type: ignore[no-any-return]
        if cached_lines is not None and len(cached_lines) == 4 and cached_lines[2]:
            text = "".join(cached_lines[2])
        else:
            raise OSError(
                f"remote_exec needs the source of module {module.__name__!r} "
                f"({filename or 'no file'}): {exc}"
            ) from None
    _module_sources[module] = (filename, text)
    return filename, text


def _check_function(func: "types.FunctionType", module_globals: bool = False) -> None:
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


def _global_names(code: "types.CodeType") -> "Iterator[str]":
    import dis

    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            yield str(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, _CodeType):
            yield from _global_names(const)


#: The file name of code sent as a string, in tracebacks and inspect.stack() (as in
#: execnet 2.1.2, whose users match on it).
REMOTE_EXEC_FILENAME = "<remote exec>"


def compile_spec(spec: ExecSpec) -> "types.CodeType":
    """The code object for ``spec``, with the real file name and line numbers.

    When that file does not exist here, its lines are put in linecache so tracebacks
    show them. A string source is named ``<remote exec>``; every task's string has that
    name, so its lines reach only the traceback of its own failure (format_failure).
    """
    filename = spec.filename or REMOTE_EXEC_FILENAME
    text = "\n" * (spec.firstlineno - 1) + spec.source
    code = _compile(text, filename)
    if not spec.filename:
        return code
    lines = text.splitlines(True)
    if not _same_lines(filename, lines, spec.firstlineno):
        # the file is not here (or differs): tracebacks show the lines that ran
        entry = (len(text), None, lines, filename)
        # (another thread may be importing linecache: a module without `cache` yet)
        cache = getattr(sys.modules.get("linecache"), "cache", None)
        if cache is None:
            _pending_lines[filename] = entry  # see install_lines
        else:
            cache[filename] = entry
    return code


def _compile(text: str, filename: str) -> "types.CodeType":
    """``compile(text, filename, "exec", dont_inherit=True)``, fast on a fresh interpreter.

    The builtin compile() first makes the ``ast`` module's ~120 node classes (it checks
    whether its argument is an AST), about 1 ms that a remote's first remote_exec would
    pay; exec() of a string compiles the same way without them. So, on CPython and while
    no trace or profile function is set, the code object exec() compiled is taken from
    its first frame before any of it runs, and given the right file name.
    """
    if _BY_EXEC and sys.gettrace() is None and sys.getprofile() is None:
        code = _compiled_by_exec(text)
        if code is not None:
            import _imp

            _imp._fix_co_filename(code, filename)  # type: ignore[attr-defined] # nested too
            return code
    return compile(text, filename, "exec", dont_inherit=True)


_BY_EXEC = sys.implementation.name == "cpython"


class _Compiled(BaseException):
    """Stops the exec() in _compiled_by_exec at its first frame."""


def _compiled_by_exec(text: str) -> "Optional[types.CodeType]":
    """The code object exec() compiles for ``text`` (named "<string>"); none of it runs.

    The trace function sees the call of the module-level frame (the only frame whose
    globals are the fresh dict given to exec; other calls, such as a weakref callback
    run by the garbage collector meanwhile, are let be) and raises before its first
    line. None when that did not happen: a SyntaxError (compile() then raises it with
    the right file name), or anything odd. Without builtins, even code that somehow ran
    could not reach anything.
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
    except Exception:
        return None
    finally:
        sys.settrace(None)
    return found[0] if found else None


# linecache entries of compiled specs, kept here until a traceback is formatted:
# importing linecache (tokenize, re, enum) would cost every remote ~3 ms at its start.
_pending_lines: "Dict[str, Any]" = {}


def install_lines() -> None:
    """Put the lines of the specs compiled so far in linecache (before a traceback is
    formatted, so it shows them)."""
    import linecache

    while _pending_lines:
        filename, entry = _pending_lines.popitem()
        linecache.cache[filename] = entry


def _same_lines(filename: str, lines: "List[str]", firstlineno: int) -> bool:
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
    locked = _format_lock.acquire(True, 2.0)
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
