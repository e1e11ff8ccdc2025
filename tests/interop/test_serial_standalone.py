"""execnet-serial on its own: its wheel in an empty venv, its source on every target
interpreter (CPython 3.8 to 3.13 and PyPy3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from parts import ROOT, TRAVELLING_TARGETS, missing, target_interpreter

PACKAGE = ROOT / "packages" / "execnet-serial"

# Runs on every target: a varied corpus round-trips, expected bytes come out, hostile
# bytes raise LoadError, deep nesting works. Prints "ok" and nothing else on success.
ROUND_TRIP = r"""
import math, sys
import execnet_serial as s
assert s.dumps([1, "a"]) == (
    b"\x02K\x00\x00\x00\x02F\x00\x00\x00\x00F\x00\x00\x00\x01P"
    b"F\x00\x00\x00\x01N\x00\x00\x00\x01aPQ"
)
corpus = [
    None, True, False, 0, -1, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**200, -2**200,
    1.5, -0.0, math.inf, 1 - 2j, "", "h\xe9llo \U0001f600", b"\x00\xff",
    [], [1, [2, [3]]], list(range(50)), ["x"] * 20, [0.25] * 20, (), (1, ("a", b"b")),
    {}, {"k": {"n": [None]}, (1, 2): frozenset([3]), 4: {5, 6}},
    {"nodeid": "t.py::test", "location": ("t.py", 1, "test"), "duration": 0.5,
     "sections": [("out", "x")], "keywords": {"test": 1}, "longrepr": None},
]
for value in corpus:
    data = s.dumps(value)
    assert s.loads(data) == value, value
    assert s.loads_payload(s.dumps_payload(value)) == value
assert math.isnan(s.loads(s.dumps(math.nan)))
for bad in (b"", b"\x02", b"\x02Z", b"\x02K\x7f\xff\xff\xffQ", b"\x02LLQ", b"\x02JJLPQ"):
    try:
        s.loads(bad)
    except s.LoadError:
        pass
    else:
        raise AssertionError(bad)
try:
    s.dumps(object())
except s.DumpError:
    pass
deep = "leaf"
for _ in range(10000):
    deep = [deep]
assert len(s.dumps(deep)) == 1 + 10 * 10000 + 9 + 10000 + 1
print("ok")
"""


@pytest.mark.parametrize("target", TRAVELLING_TARGETS)
def test_source_runs_on_every_target(target: str) -> None:
    python = target_interpreter(target)
    proc = subprocess.run(
        [python, "-c", ROUND_TRIP],
        env={"PYTHONPATH": str(PACKAGE / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "ok\n"


@pytest.mark.slow
def test_wheel_in_an_empty_venv(tmp_path: Path) -> None:
    hatch = shutil.which("hatch")
    if hatch is None:
        missing("hatch is not on PATH (pip install hatch)")
    dist = tmp_path / "dist"
    # Inside `hatch test`, HATCH_ENV_ACTIVE would make hatch build refuse to run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCH_ENV")}
    subprocess.run(
        [hatch, "build", "-t", "wheel", str(dist)],
        cwd=PACKAGE,
        env=env,
        check=True,
        capture_output=True,
        timeout=110,
    )
    (wheel,) = dist.glob("execnet_serial-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
        names = archive.namelist()
    assert "Name: execnet-serial" in text
    assert "Requires-Dist" not in text
    assert "execnet_serial/py.typed" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-index", str(wheel)], check=True, capture_output=True, timeout=110
    )
    listed = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    installed = {name.split("==")[0] for name in listed} - {"pip", "setuptools"}
    assert installed == {"execnet-serial"}
    proc = subprocess.run(
        [python, "-I", "-c", ROUND_TRIP], capture_output=True, text=True, timeout=110, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "ok\n"
    where = subprocess.run(
        [python, "-I", "-c", "import execnet_serial; print(execnet_serial.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert str(env_dir) in where
    assert sys.prefix not in where
