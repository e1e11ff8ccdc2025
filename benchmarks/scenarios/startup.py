"""Gateway startup: makegateway + one remote_exec round trip + exit, in ms (lower is better).

- popen: the interpreter running the benchmark (our child imports the installed
  packages; nothing crosses the pipe but the small config frame). Target: median <= 25 ms.
- popen_other: `python=` another CPython (the newest other one under pyenv), so the
  bootstrap ships the travelling modules as one compressed bundle.
- ssh: the spec named by EXECNET_BENCH_SSH (e.g. `ssh=localhost//python=python3`),
  skipped when unset.

One untimed gateway first warms up this side's imports and the page cache.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Callable, Optional

from _harness import Measure, Skip, run_cli, time_gateway_cycle


def other_cpython() -> Optional[str]:
    """The newest CPython 3.8+ under pyenv of another minor version than this one (its
    newest patch release: 3.12.10 is newer than 3.12.9)."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    me = "python{}.{}".format(*sys.version_info[:2])
    found = []
    for path in glob.glob(f"{root}/versions/3.*/bin/python3.*"):
        name = os.path.basename(path)
        minor = name[len("python3.") :]
        release = os.path.basename(os.path.dirname(os.path.dirname(path)))  # 3.12.10
        numbers = tuple(int(n) for n in release.split(".") if n.isdigit())
        if minor.isdigit() and int(minor) >= 8 and name != me:
            found.append((int(minor), numbers, path))
    return max(found)[2] if found else None


def _case(spec: Optional[str], missing: str) -> Callable[[], Measure]:
    def case() -> Measure:
        if spec is None:
            raise Skip(missing)
        time_gateway_cycle(spec)  # warm up
        return Measure(time_gateway_cycle(spec), "gateway")

    return case


_OTHER = other_cpython()

CASES = {
    "popen": _case("popen", ""),
    "popen_other": _case(
        f"popen//python={_OTHER}" if _OTHER else None, "no second CPython under pyenv"
    ),
    "ssh": _case(os.environ.get("EXECNET_BENCH_SSH") or None, "EXECNET_BENCH_SSH is not set"),
}

if __name__ == "__main__":
    run_cli(CASES)
