"""What remote_exec sends: checked locally, compiled remotely with real names and lines."""

from __future__ import annotations

import importlib.util
import linecache
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterator

import pytest

from execnet_channel import RemoteError, _trace
from execnet_channel._source import ExecSpec, compile_spec, make_spec

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
    compile_spec(spec)
    assert linecache.getline(str(path), 4).strip() == "raise ValueError"
    linecache.cache.pop(str(path), None)


def test_a_string_source_is_named_remote_exec() -> None:
    spec = make_spec("  a = 1\n  b = 2\n", {})
    code = compile_spec(spec)
    assert code.co_filename == "<remote exec>"  # as in execnet 2.1.2
    assert "<remote exec>" not in linecache.cache  # only while its failure is formatted


def test_string_tasks_are_named_remote_exec_in_stack_and_traceback(
    make_pair: Callable[..., Any],
) -> None:
    gw = make_pair().gw
    channel = gw.remote_exec("import inspect\nchannel.send(inspect.stack()[0].filename)\n")
    assert channel.receive(TIMEOUT) == "<remote exec>"
    channel = gw.remote_exec("x = 1\nraise KeyError('from a string')\n")
    with pytest.raises(RemoteError) as info:
        channel.waitclose(TIMEOUT)
    assert 'File "<remote exec>", line 2, in <module>' in str(info.value)


def test_concurrent_failing_string_tasks_each_show_their_own_lines(
    make_pair: Callable[..., Any],
) -> None:
    # Every string task is "<remote exec>": the lines of one must not appear in the
    # traceback of another (they stand in linecache only while their text is made).
    gw = make_pair().gw
    channels = [
        gw.remote_exec(f"channel.receive()\nfailing_number = {n}\nraise ValueError({n})\n")
        for n in range(6)
    ]
    for channel in channels:
        channel.send(None)
    for n, channel in enumerate(channels):
        with pytest.raises(RemoteError) as info:
            channel.waitclose(TIMEOUT)
        text = str(info.value)
        assert f"raise ValueError({n})" in text, text
        assert "line 3" in text
    assert "<remote exec>" not in linecache.cache


def _fresh_module(directory: Path, name: str, body: str) -> ModuleType:
    path = directory / f"{name}.py"
    path.write_text(body)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULE_BODY = "if __name__ == '__channelexec__':\n    channel.send('module ran')\n"


@pytest.fixture
def traced(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> Iterator[Callable[[], str]]:
    """Tracing to stderr (EXECNET_DEBUG=2) for this test; returns what was traced."""
    monkeypatch.setattr(_trace, "_mode", "2")
    monkeypatch.setattr(_trace, "_stream", None)
    yield lambda: capfd.readouterr().err
    _trace._mode = None  # now, while stderr is still captured (threads may trace on)


def test_a_module_whose_file_is_deleted_after_use_is_sent_again(
    tmp_path: Path, make_pair: Callable[..., Any], traced: Callable[[], str]
) -> None:
    gw = make_pair().gw
    module = _fresh_module(tmp_path, "sent_then_deleted", MODULE_BODY)
    assert gw.remote_exec(module).receive(TIMEOUT) == "module ran"
    (tmp_path / "sent_then_deleted.py").unlink()
    linecache.checkcache()  # as inspect does: the lines of a missing file are dropped
    assert gw.remote_exec(module).receive(TIMEOUT) == "module ran"
    assert "sending the source of sent_then_deleted sent before" in traced()


def test_a_deleted_module_travels_from_the_lines_linecache_held(
    tmp_path: Path, make_pair: Callable[..., Any], traced: Callable[[], str]
) -> None:
    module = _fresh_module(tmp_path, "cached_then_deleted", MODULE_BODY)
    path = str(tmp_path / "cached_then_deleted.py")
    assert linecache.getlines(path)  # e.g. a traceback through it read them
    os.unlink(path)
    try:
        assert make_pair().gw.remote_exec(module).receive(TIMEOUT) == "module ran"
    finally:
        linecache.cache.pop(path, None)
    assert f"sending the lines linecache held for {path}" in traced()


def test_a_module_without_source_is_refused_naming_it(tmp_path: Path) -> None:
    module = _fresh_module(tmp_path, "never_sent", MODULE_BODY)
    (tmp_path / "never_sent.py").unlink()
    linecache.checkcache()
    with pytest.raises(OSError, match=r"source of module 'never_sent' \(.*never_sent.py\)"):
        make_spec(module, {})
