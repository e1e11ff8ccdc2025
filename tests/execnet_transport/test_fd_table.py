"""The descriptor table grows once, before the first gateway (execnet_transport._fd_table).

Growing it while threads run waits for an RCU grace period per doubling (23 ms of a
Group of 32 fork gateways); a process's first gateway grows it to 1024 while the process
still has one thread. Checked in a fresh process that has only fds 0-2 open, from the
kernel's own figure (/proc/self/status, FDSize).

A child's first table is sized for the descriptors its parent had open when it forked
(pytest's process has some above 64), so the measured program is a grandchild: its
parent, started with only 0-2 open, hands it the kernel's first table of 64.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = textwrap.dedent(
    """
    import os, resource
    import execnet

    def table():
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("FDSize:"))

    def open_fds():
        return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))

    before = table()
    gw = execnet.makegateway("popen")
    assert gw.remote_exec("channel.send(1)").receive() == 1
    after = table()
    gw.exit()
    gw.join()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(before, after, min(soft, 1024), max(open_fds()))
    """
)
LAUNCHER = (
    "import subprocess, sys; raise SystemExit(subprocess.call([sys.executable] + sys.argv[1:]))"
)


def _run(tmp_path: Path, program: str) -> list[int]:
    script = tmp_path / "fd_table.py"
    script.write_text(program)
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "EXECNET_FORK"},
    )
    return [int(word) for word in out.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FDSize is Linux's")
def test_the_first_gateway_grows_the_descriptor_table(tmp_path: Path) -> None:
    before, after, wanted, highest = _run(tmp_path, PROGRAM)
    assert before == 64  # a fresh process: the kernel's first table
    assert after >= wanted
    assert highest < 64  # grown, yet no descriptor was left open up there


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FDSize is Linux's")
def test_a_low_descriptor_limit_is_respected(tmp_path: Path) -> None:
    program = "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))\n"
    before, after, wanted, _ = _run(tmp_path, program + PROGRAM)
    assert before == 64
    assert wanted == 200
    assert after == 256  # the table for fd 199: the kernel rounds up to a power of two
