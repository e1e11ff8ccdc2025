"""What remote_exec sends (a source and where it came from) and how the remote runs it."""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, NamedTuple, Optional

__all__ = ["ExecSpec", "compile_spec", "make_spec"]

# The remote side only compiles: inspect, dis, re and textwrap are imported by the sender
# (make_spec), linecache when a traceback needs lines; they are slow to import.


if TYPE_CHECKING:

    class ExecSpec(NamedTuple):
        """The payload of an exec frame."""

        source: str
        filename: str  # "" for a string source: the remote names it after the channel
        firstlineno: int
        callname: Optional[str]  # a function's name: called as f(channel, **kwargs)
        kwargs: Dict[str, Any]

else:
    # The same as a NamedTuple without importing typing (or collections) at run time.
    class ExecSpec(tuple):
        """The payload of an exec frame."""

        __slots__ = ()

        def __new__(cls, source, filename, firstlineno, callname, kwargs):
            return tuple.__new__(cls, (source, filename, firstlineno, callname, kwargs))

        source = property(lambda self: self[0])
        filename = property(lambda self: self[1])
        firstlineno = property(lambda self: self[2])
        callname = property(lambda self: self[3])
        kwargs = property(lambda self: self[4])


def make_spec(source: object, kwargs: Dict[str, Any]) -> ExecSpec:
    """Check ``source`` for remote_exec and describe it; errors before anything is sent."""
    import textwrap

    if isinstance(source, types.FunctionType):
        import inspect
        import re

        _check_function(source)
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
        import inspect

        filename = inspect.getsourcefile(source) or getattr(source, "__file__", "") or ""
        return ExecSpec(inspect.getsource(source), filename, 1, None, {})
    if isinstance(source, str):
        return ExecSpec(textwrap.dedent(source), "", 1, None, {})
    raise TypeError(
        f"remote_exec source must be a string, a function or a module, not {type(source).__name__}"
    )


def _check_function(func: types.FunctionType) -> None:
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
    for global_name in sorted(set(_global_names(code))):
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


def compile_spec(spec: ExecSpec, channel_id: int) -> types.CodeType:
    """The code object for ``spec``, with the real file name and line numbers.

    When that file does not exist here, its lines are put in linecache so tracebacks
    show them; a string source is named ``<remote exec channel N>``.
    """
    filename = spec.filename or f"<remote exec channel {channel_id}>"
    text = "\n" * (spec.firstlineno - 1) + spec.source
    code = compile(text, filename, "exec", dont_inherit=True)
    lines = text.splitlines(True)
    if not spec.filename or not _same_lines(filename, lines, spec.firstlineno):
        # the file is not here (or differs): tracebacks show the lines that ran
        entry = (len(text), None, lines, filename)
        linecache = sys.modules.get("linecache")
        if linecache is None:
            _pending_lines[filename] = entry  # see install_lines
        else:
            linecache.cache[filename] = entry
    return code


# linecache entries of compiled specs, kept here until a traceback is formatted:
# importing linecache (tokenize, re, enum) would cost every remote ~3 ms at its start.
_pending_lines: Dict[str, Any] = {}


def install_lines() -> None:
    """Put the lines of the specs compiled so far in linecache (before a traceback is
    formatted, so it shows them)."""
    import linecache

    while _pending_lines:
        filename, entry = _pending_lines.popitem()
        linecache.cache[filename] = entry


def _same_lines(filename: str, lines: List[str], firstlineno: int) -> bool:
    try:
        with open(filename, encoding="utf-8") as file:
            on_disk = file.readlines()
    except (OSError, ValueError):  # not here, or not UTF-8: use the lines that ran
        return False
    start = firstlineno - 1
    on_disk = on_disk[start : len(lines)]
    return [line.strip() for line in on_disk] == [line.strip() for line in lines[start:]]


def forget_spec(spec: ExecSpec, channel_id: int) -> None:
    """Drop what compile_spec put in linecache for a string source (names are unique)."""
    if not spec.filename:
        filename = f"<remote exec channel {channel_id}>"
        _pending_lines.pop(filename, None)
        linecache = sys.modules.get("linecache")
        if linecache is not None:
            linecache.cache.pop(filename, None)
