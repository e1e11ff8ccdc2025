"""The remote's first compile (`_startup.compile_source`): on CPython exec() compiles
without creating the ast module's classes, and what it gives equals builtin
compile(..., dont_inherit=True). Both ways are tested on every interpreter."""

from __future__ import annotations

import gc
import os
import sys
import weakref
from typing import Any, List

import pytest

from execnet_channel import _startup
from execnet_channel._startup import compile_source as _compile


@pytest.fixture(autouse=True, params=["by-exec", "builtin"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    by_exec = request.param == "by-exec"
    if by_exec and sys.implementation.name != "cpython":
        pytest.skip("the exec() way is for CPython")
    monkeypatch.setattr(_startup, "_BY_EXEC", by_exec)
    if by_exec:  # a greenlet test run before may have imported it into this process
        monkeypatch.delitem(sys.modules, "greenlet", raising=False)
    return str(request.param)


SOURCE = (
    "import os\n"
    "def outer():\n"
    "    def inner():\n"
    "        return os.getpid()\n"
    "    return inner()\n"
    "class K:\n"
    "    a: int = 1\n"
    "result = outer()\n"
)


def test_compile_gives_what_builtin_compile_gives() -> None:
    code = _compile(SOURCE, "<remote exec channel 3>")
    reference = compile(SOURCE, "<remote exec channel 3>", "exec", dont_inherit=True)
    assert code.co_code == reference.co_code
    assert code.co_flags == reference.co_flags  # no __future__ flag of _source.py
    namespace: dict[str, Any] = {"__name__": "__channelexec__"}
    exec(code, namespace)
    assert namespace["result"] == os.getpid()
    assert namespace["K"].__annotations__ == {"a": int}  # not strings
    inner = namespace["outer"].__code__.co_consts
    filenames = {c.co_filename for c in inner if hasattr(c, "co_filename")}
    assert filenames == {"<remote exec channel 3>"}  # nested code objects renamed too


def test_compile_runs_nothing_and_keeps_future_imports_of_the_source() -> None:
    code = _compile("raise SystemExit('ran')\n", "<x>")
    with pytest.raises(SystemExit, match="ran"):
        exec(code, {})
    code = _compile("from __future__ import annotations\ndef f(a: int): pass\n", "<y>")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    assert namespace["f"].__annotations__ == {"a": "int"}


def test_compile_errors_name_the_file() -> None:
    with pytest.raises(SyntaxError) as info:
        _compile("x = (\n", "<remote exec channel 4>")
    assert info.value.filename == "<remote exec channel 4>"
    with pytest.raises((SyntaxError, ValueError)):
        _compile("x = 1\0", "<remote exec channel 5>")


def test_compile_leaves_other_calls_alone_while_it_compiles() -> None:
    # The garbage collector may run a weakref callback during the compile: it runs
    # normally and is not taken for the compiled code.
    called: List[int] = []

    class Thing:
        pass

    refs = []
    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        for _ in range(200):
            thing = Thing()
            refs.append(weakref.ref(thing, lambda _, called=called: called.append(1)))
            thing.cycle = thing  # type: ignore[attr-defined]
            del thing
            code = _compile("value = 6 * 7\n", "<z>")
            namespace: dict[str, Any] = {}
            exec(code, namespace)
            assert namespace["value"] == 42
    finally:
        gc.set_threshold(*old)
    gc.collect()
    assert len(called) == 200


def test_compile_leaves_a_trace_function_in_place() -> None:
    events: List[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        events.append(event)

    sys.settrace(tracer)
    try:
        code = _compile("y = 1\n", "<traced>")
        assert sys.gettrace() is tracer  # builtin compile() was used instead
    finally:
        sys.settrace(None)
    assert code.co_filename == "<traced>"


def test_where_greenlets_run_builtin_compile_is_used(
    way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins
    import types

    calls: List[str] = []
    real = builtins.compile

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(builtins, "compile", spy)
    _compile("z = 2\n", "<plain>")
    assert calls == ([] if way == "by-exec" else ["<plain>"])
    monkeypatch.setitem(sys.modules, "greenlet", types.ModuleType("greenlet"))
    code = _compile("z = 3\n", "<green>")
    assert calls[-1] == "<green>"  # not exec() under a trace function
    assert code.co_filename == "<green>"
