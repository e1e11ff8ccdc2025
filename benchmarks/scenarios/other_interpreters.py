"""A popen gateway to another interpreter: ready + one exec + exit.

`python=` names an interpreter other than the one running the benchmark (the newest
other CPython under pyenv, and Debian's pypy3), so the bootstrap has to ship the
travelling code instead of importing installed packages. One untimed gateway first warms
up this side's imports and the page cache. Lower is better.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time
from typing import Callable, Optional

from _harness import Measure, Skip, run_cli

import execnet


def _other_cpython() -> Optional[str]:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    me = "python{}.{}".format(*sys.version_info[:2])
    found = []
    for path in glob.glob(f"{root}/versions/3.*/bin/python3.*"):
        name = os.path.basename(path)
        minor = name[len("python3.") :]
        if minor.isdigit() and int(minor) >= 8 and name != me:
            found.append((int(minor), path))
    return max(found)[1] if found else None


def _startup(python: Optional[str], what: str) -> Callable[[], Measure]:
    def once() -> float:
        start = time.perf_counter()
        gateway = execnet.makegateway(f"popen//python={python}")
        channel = gateway.remote_exec("import sys; channel.send(sys.version_info[0])")
        assert channel.receive() == 3
        channel.waitclose()
        gateway.exit()
        gateway.join()
        return time.perf_counter() - start

    def case() -> Measure:
        if python is None:
            raise Skip(f"no {what} on this machine")
        once()  # warm up: imports on this side, the interpreter's files in the page cache
        return Measure(once(), "gateway")

    return case


CASES = {
    "other_cpython": _startup(_other_cpython(), "second CPython under pyenv"),
    "pypy3": _startup(shutil.which("pypy3"), "pypy3"),
}

if __name__ == "__main__":
    run_cli(CASES)
