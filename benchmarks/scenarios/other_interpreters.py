"""A popen gateway to PyPy: ready + one exec + exit.

`python=pypy3` (Debian's), so the bootstrap has to ship the travelling code instead of
importing installed packages, and that code must run on PyPy (startup.py covers another
CPython as `popen_other`). One untimed gateway first warms up this side's imports and
the page cache. Lower is better.
"""

from __future__ import annotations

import shutil
import time
from typing import Callable, Optional

from _harness import Measure, Skip, run_cli

import execnet


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


# Another CPython is startup.py's `popen_other` (the transport's scenario).
CASES = {"pypy3": _startup(shutil.which("pypy3"), "pypy3")}

if __name__ == "__main__":
    run_cli(CASES)
