"""The contract every benchmark scenario follows.

A scenario is a script `benchmarks/scenarios/<name>.py` that imports only the public
`execnet` API, so the same file runs under this project's packages and under execnet
2.1.2 (each in its own virtual environment). It defines CASES, a dict from case name to
a function that performs one measured run and returns a `Measure` (setup excluded from
the elapsed time), and ends with `run_cli(CASES)`.

    python benchmarks/scenarios/serializer.py --list
    python benchmarks/scenarios/serializer.py --case ints --repeat 5

prints one JSON object per line: {"case", "seconds": [...], "unit", "amount", "extra"}.
`amount` in `unit`s per run turns seconds into a rate (items/s, MiB/s); `extra` holds
case-specific figures such as peak RSS.

Conventions the runner (`benchmarks/run.py`) understands:
- a case that cannot run here (no sshd, no pypy3) raises `Skip("reason")`; run_cli then
  prints {"case", "skipped": reason} instead of timings;
- `quick()` is true under `run.py --quick` (environment EXECNET_BENCH_QUICK=1): scale the
  work down (fewer items), keeping `amount` honest so rates stay comparable;
- peak memory goes in `extra` as `rss_local_mib` (this process, `peak_rss_mib()`) and
  `rss_remote_mib` (the other side, `remote_peak_rss_mib(gateway)`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple


class Measure(NamedTuple):
    seconds: float
    unit: str = "run"
    amount: float = 1.0
    extra: Optional[Dict[str, float]] = None


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Skip(Exception):
    """Raised by a case that cannot run on this machine; the text says why."""


def quick() -> bool:
    """True when the runner asked for a short run (`run.py --quick`)."""
    return os.environ.get("EXECNET_BENCH_QUICK", "") not in ("", "0")


def remote_peak_rss_mib(gateway: Any) -> float:
    """Peak resident set size of the process behind `gateway` so far, in MiB."""
    channel = gateway.remote_exec(
        "import resource\n"
        "channel.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)\n"
    )
    value = float(channel.receive())
    channel.waitclose()
    return value


def gateway_cycle_times(spec: str) -> Tuple[float, float]:
    """One gateway's whole life: (seconds to the first answer, seconds through its exit).

    The clock starts before makegateway; the first answer is the reply of one
    remote_exec; the exit is gateway.exit() and join() after that channel closed.
    """
    import execnet

    start = time.perf_counter()
    gateway = execnet.makegateway(spec)
    channel = gateway.remote_exec("import os; channel.send(os.getpid())")
    assert isinstance(channel.receive(), int)
    answered = time.perf_counter()
    channel.waitclose()
    gateway.exit()
    gateway.join()
    return answered - start, time.perf_counter() - start


def time_gateway_cycle(spec: str) -> float:
    """Seconds for one gateway's whole life: makegateway, one remote_exec answered, exit.

    The figure the startup, ssh and other-interpreter scenarios report.
    """
    return gateway_cycle_times(spec)[1]


def run_cli(cases: Dict[str, Callable[[], Measure]], argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", action="append", help="case to run (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--list", action="store_true", help="print the case names")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(cases))
        return
    for name in args.case or list(cases):
        if name not in cases:
            parser.error(f"unknown case {name!r}; known: {', '.join(cases)}")
        try:
            runs = [cases[name]() for _ in range(args.repeat)]
        except Skip as skip:
            print(json.dumps({"case": name, "skipped": str(skip)}), flush=True)
            continue
        extra: Dict[str, float] = {}
        for run in runs:
            for key, value in (run.extra or {}).items():
                extra[key] = max(extra.get(key, value), value)
        record = {
            "case": name,
            "seconds": [run.seconds for run in runs],
            "unit": runs[0].unit,
            "amount": runs[0].amount,
            "extra": extra,
        }
        print(json.dumps(record), flush=True)
    sys.stdout.flush()
