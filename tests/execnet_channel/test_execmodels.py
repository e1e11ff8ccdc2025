"""Execution models: one interface, lazily imported greenlet backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from execnet_channel import EXECMODEL_NAMES, ExecModel, get_execmodel

SRC = [
    str(Path(__file__).resolve().parents[2] / "packages" / name / "src")
    for name in ("execnet-serial", "execnet-channel")
]


def test_names() -> None:
    assert EXECMODEL_NAMES == ("thread", "main_thread_only", "eventlet", "gevent")


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown execmodel 'nope'") as info:
        get_execmodel("nope")
    for name in EXECMODEL_NAMES:
        assert name in str(info.value)


def test_a_model_is_returned_as_is() -> None:
    model = get_execmodel("thread")
    assert get_execmodel(model) is model
    assert isinstance(model, ExecModel)
    assert repr(model) == "<ExecModel 'thread'>"


@pytest.mark.parametrize("name", ["thread", "main_thread_only"])
def test_thread_primitives(name: str) -> None:
    model = get_execmodel(name)
    assert model.backend == name
    assert not model.cooperative
    lock, rlock, event = model.Lock(), model.RLock(), model.Event()
    with rlock, rlock:
        pass
    with lock:
        pass
    results = []

    def task(x: int) -> None:
        results.append((x, model.get_ident()))
        event.set()

    model.start(task, (7,))
    assert event.wait(10)
    assert results[0][0] == 7
    assert results[0][1] != model.get_ident()
    model.sleep(0)
    assert model.queue.Queue
    assert model.subprocess.Popen
    assert model.socket.socketpair
    r, w = os.pipe()
    with model.fdopen(w, "wb") as f:
        f.write(b"x")
    with model.fdopen(r, "rb") as f:
        assert f.read() == b"x"


GREENLET_CHECK = """
import sys
import execnet_channel
assert "gevent" not in sys.modules and "eventlet" not in sys.modules, "imported eagerly"
model = execnet_channel.get_execmodel(sys.argv[1])
assert sys.argv[1] in sys.modules
assert model.backend == sys.argv[1] and model.cooperative
event = model.Event()
out = []
def task(x):
    out.append((x, model.get_ident()))
    event.set()
model.start(task, (5,))
assert event.wait(10)
assert out[0][0] == 5
with model.RLock():
    with model.Lock():
        pass
model.sleep(0)
q = model._queue(); q.put(1); assert q.get() == 1
assert model.queue.Queue and model.subprocess.Popen and model.socket.socketpair
print("ok")
"""


@pytest.mark.parametrize("name", ["gevent", "eventlet"])
def test_greenlet_models_import_lazily(name: str) -> None:
    pytest.importorskip(name)
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-W", "ignore", "-c", GREENLET_CHECK, name],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(SRC)),
    )
    assert result.stdout.strip() == "ok", result.stderr
