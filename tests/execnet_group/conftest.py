"""Fixtures of the group tests: process checks by pid, through the kernel (no psutil)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from procs import alive, children, exists, wait_gone


@pytest.fixture
def procs() -> SimpleNamespace:
    """alive(pid), exists(pid), children(pid=None), wait_gone(pids, timeout)."""
    return SimpleNamespace(alive=alive, exists=exists, children=children, wait_gone=wait_gone)


@pytest.fixture
def group():  # type: ignore[no-untyped-def]
    """A fresh Group, terminated (and checked) after the test."""
    from execnet_group import Group

    made = Group()
    yield made
    pids = [gw.child_pid for gw in made if gw.child_pid is not None]
    made.terminate(timeout=5)
    assert not [pid for pid in pids if alive(pid)], "children left alive after terminate"


BARRIER = """#!/bin/sh
# Start python only once COUNT of these have started: sequential bootstraps never get
# there, and then each gives up after a while and says so.
echo started >> "{log}"
tries=0
while [ "$(wc -l < "{log}")" -lt {count} ]; do
    tries=$((tries + 1))
    if [ $tries -gt 2000 ]; then echo gave-up >> "{log}.gave-up"; break; fi
    sleep 0.01
done
exec "{python}" "$@"
"""


@pytest.fixture
def barrier(tmp_path: Path):  # type: ignore[no-untyped-def]
    """barrier(count) -> (python, gave_up): an interpreter command that starts only once
    `count` of them run at the same time; `gave_up` exists if one waited in vain. Proves
    bootstraps overlap without timing anything."""

    def make(count: int) -> tuple[str, Path]:
        log = tmp_path / "started.log"
        script = tmp_path / "barrier-python"
        script.write_text(BARRIER.format(log=log, count=count, python=sys.executable))
        script.chmod(0o755)
        return str(script), tmp_path / "started.log.gave-up"

    return make
