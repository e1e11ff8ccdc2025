"""A popen gateway to PyPy: ready + one exec + exit.

`python=pypy3` (Debian's), so the bootstrap has to ship the travelling code instead of
importing installed packages, and that code must run on PyPy (startup.py covers another
CPython as `popen_other`). One untimed gateway first warms up this side's imports and
the page cache. Lower is better.
"""

from __future__ import annotations

import shutil
from typing import Callable, Optional

from _harness import Measure, Skip, run_cli, time_gateway_cycle


def _startup(python: Optional[str], what: str) -> Callable[[], Measure]:
    def case() -> Measure:
        if python is None:
            raise Skip(f"no {what} on this machine")
        spec = f"popen//python={python}"
        # warm up: imports on this side, the interpreter's files in the page cache
        time_gateway_cycle(spec)
        return Measure(time_gateway_cycle(spec), "gateway")

    return case


# Another CPython is startup.py's `popen_other` (the transport's scenario).
CASES = {"pypy3": _startup(shutil.which("pypy3"), "pypy3")}

if __name__ == "__main__":
    run_cli(CASES)
