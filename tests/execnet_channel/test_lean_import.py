"""A remote's start: what importing the travelling packages and serving costs.

Every popen gateway and pytest-xdist worker imports execnet_channel and runs serve();
the modules that are slow to import stay out of that path (checked in an interpreter
started with -S, so no site hook preloads them).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from execnet_channel import _startup, get_execmodel
from execnet_channel._source import ExecSpec, compile_spec, format_failure

ROOT = Path(__file__).resolve().parents[2]
SRC_DIRS = [str(ROOT / "packages" / name / "src") for name in ("execnet-serial", "execnet-channel")]
SLOW = ("typing", "threading", "queue", "linecache", "contextlib", "collections", "re")

_PROGRAM = f"""
import sys
sys.path[:0] = {SRC_DIRS!r}
import execnet_channel, execnet_serial
model = execnet_channel.get_execmodel("thread")
lock, rlock, event, queue = model.Lock(), model.RLock(), model._event(), model._queue()
queue.put(1); assert queue.get(timeout=1) == 1
spec = execnet_channel._source.ExecSpec("x = 1\\n", "", 1, None, {{}})
exec(execnet_channel._source.compile_spec(spec), {{}})
print(sorted(name for name in {SLOW!r} if name in sys.modules))
assert execnet_serial.ChannelHook is not None and execnet_channel.IO is not None
print("typing" in sys.modules)
"""


def test_the_remote_path_imports_none_of_the_slow_modules() -> None:
    out = subprocess.run(
        [sys.executable, "-S", "-c", _PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded, protocols_loaded_typing = out.stdout.split("\n")[:2]
    assert loaded == "[]"
    assert protocols_loaded_typing == "True"  # the Protocols load on first use


def test_lock_event_sets_once_and_wakes_every_waiter() -> None:
    event = _startup.LockEvent()
    assert not event.is_set()
    assert event.wait(0) is False
    assert event.wait(0.01) is False
    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(event.wait(30))) for _ in range(5)]
    for waiter in waiters:
        waiter.start()
    event.set()
    event.set()  # a second set is harmless
    for waiter in waiters:
        waiter.join(30)
    assert woken == [True] * 5
    assert event.is_set()
    assert event.wait()
    assert event.wait(0)


def test_thread_model_primitives_match_threading_once_it_is_imported() -> None:
    model = get_execmodel("thread")
    assert type(model.Lock()) is type(threading.Lock())
    assert type(model.RLock()) is type(threading.RLock())
    assert type(model._event()) is threading.Event  # threading is imported here
    import queue

    assert model._queue_empty() is queue.Empty
    assert type(model._queue()) is queue.SimpleQueue


def test_string_source_lines_reach_tracebacks() -> None:
    import linecache

    spec = ExecSpec("x = 1\nraise KeyError('here')\n", "", 1, None, {})
    code = compile_spec(spec)
    assert code.co_filename == "<remote exec>"
    try:
        exec(code, {})
    except KeyError as error:
        text = format_failure(spec, error)
    else:  # pragma: no cover
        pytest.fail("no KeyError")
    assert 'File "<remote exec>", line 2' in text
    assert "raise KeyError('here')" in text
    # the lines stood in linecache only while the text was made: every string task has
    # this name, so they must not show up in another task's traceback
    assert "<remote exec>" not in linecache.cache
