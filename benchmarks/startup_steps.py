"""What each start-up trick of the travelling packages saves: one step, fresh processes.

    python benchmarks/startup_steps.py --python ~/.pyenv/versions/3.12.1/bin/python3.12
    python benchmarks/startup_steps.py --rounds 31 --only import

A popen gateway's start is about 25 ms and moves by several ms with the machine's
load, so a trick worth 0.5 ms is hard to see in a whole start (benchmarks/ab.py). Here
each round starts one fresh interpreter per step (the order rotating from round to
round) that first imports the travelling packages from this checkout as a remote does
(untimed), then times the one step a trick avoids, or the stand-in it uses instead.
The figures (ms, median and min over the rounds) are in benchmarks/README.md,
"Start-up tricks we keep, and what each saves".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from _measure import DROPPED_ENV  # found through this script's folder

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "import os; channel.send(os.getpid())\n"  # startup.py's remote_exec
_TIMED = "t = time.perf_counter()\n{step}\nd = time.perf_counter() - t\n"
STEPS: Dict[str, str] = {
    "compile: builtin compile()": f"compile({SOURCE!r}, 'x', 'exec', dont_inherit=True)",
    "compile: exec under settrace": (
        f"_startup._BY_EXEC = True\n_startup.compile_source({SOURCE!r}, '<remote exec>')"
    ),
    "event: threading.Event()": "import threading; threading.Event()",
    "event: LockEvent()": "_startup.LockEvent()",
    "import typing": "import typing",
    "import types": "import types",
    "import queue": "import queue",
    "import linecache": "import linecache",
    "import contextlib": "import contextlib",
    "import serial's lazy modules": (
        "import execnet_serial._columns, execnet_serial._encoder_deep, execnet_serial._files"
    ),
}
_PROGRAM = """import time, sys
import execnet_channel, execnet_serial
from execnet_channel import _startup
{timed}print(d)
"""


def run_step(python: str, step: str) -> float:
    # as users run: with bytecode caching (a remote gets code objects, compiles nothing)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PYTHONPATH"] = os.pathsep.join(
        str(ROOT / "packages" / name / "src") for name in ("execnet-serial", "execnet-channel")
    )
    program = _PROGRAM.format(timed=_TIMED.format(step=step))
    out = subprocess.run(
        [python, "-c", program], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return float(out.stdout) * 1000


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the measured interpreter")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--only", default="", help="steps whose name starts with this")
    args = parser.parse_args(argv)
    names = [name for name in STEPS if name.startswith(args.only)]
    times: Dict[str, List[float]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(run_step(args.python, STEPS[name]))
    print(f"{args.python}, {args.rounds} rounds, ms (a fresh interpreter per step and round)")
    for name in names:
        values = times[name]
        print(f"{name:<32} median {statistics.median(values):7.3f}  min {min(values):7.3f}")


if __name__ == "__main__":
    main()
