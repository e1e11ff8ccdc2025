"""What remote_exec sends: checked locally, compiled remotely with real names and lines."""

from __future__ import annotations

import linecache
from typing import Any, Callable, Dict

import pytest

from execnet_channel._source import ExecSpec, compile_spec, forget_spec, make_spec

TIMEOUT = 30.0


def test_function_without_source(make_pair: Callable[..., Any]) -> None:
    namespace: Dict[str, Any] = {}
    exec("def made_by_exec(channel):\n    pass\n", namespace)
    with pytest.raises(ValueError, match="source of function 'made_by_exec'"):
        make_pair().gw.remote_exec(namespace["made_by_exec"])


def decorated_marker(func: Any) -> Any:
    return func


@decorated_marker
def decorated(channel):  # type: ignore[no-untyped-def]
    channel.send("decorator dropped")


def test_decorator_lines_are_dropped(make_pair: Callable[..., Any]) -> None:
    spec = make_spec(decorated, {})
    assert spec.source.startswith("def decorated")
    assert make_pair().gw.remote_exec(decorated).receive(TIMEOUT) == "decorator dropped"


def test_a_file_that_differs_remotely_shows_the_lines_that_ran(tmp_path: Any) -> None:
    path = tmp_path / "elsewhere.py"
    path.write_text("# an older version of the file\nx = 1\n\n\n")
    spec = ExecSpec("def f(channel):\n    raise ValueError\n", str(path), 3, "f", {})
    compile_spec(spec, 1)
    assert linecache.getline(str(path), 4).strip() == "raise ValueError"
    linecache.cache.pop(str(path), None)


def test_a_string_source_is_named_after_its_channel() -> None:
    spec = make_spec("  a = 1\n  b = 2\n", {})
    code = compile_spec(spec, 7)
    assert code.co_filename == "<remote exec channel 7>"
    assert linecache.getline("<remote exec channel 7>", 2) == "b = 2\n"
    forget_spec(spec, 7)
    assert "<remote exec channel 7>" not in linecache.cache
