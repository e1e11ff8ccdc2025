"""A/B: the same start-up case under two (or more) source trees of ours, alternating.

    python benchmarks/ab.py --tree before=/tmp/base --tree after=. --case popen --rounds 15
    python benchmarks/ab.py --tree a=/tmp/a --tree b=/tmp/b --case worker_import

A tree is a directory holding `packages/<dist>/src` (a checkout, a `git archive`, a copy
with one change). Each round starts a fresh process per tree, in turn (the order rotates
from round to round), with PYTHONPATH set to that tree's `src` directories, so every
tree sees the same machine load; each process first runs one untimed cycle (imports,
page cache), then `--cycles` timed ones. The figure per tree is the median over rounds
of each round's median; the comparison is the median of the paired per-round
differences against the first tree, with their quartiles (the spread to judge noise by).

Cases (one cycle each; ms, lower is better):
- popen: makegateway("popen") + one remote_exec answered + exit + join (the figure
  startup.py reports);
- popen_other: the same with `python=` the newest other CPython under pyenv (the
  bootstrap ships the travelling modules);
- worker_import: popen with the remote_exec running `import execnet` (what a
  pytest-xdist worker does first);
- cold: one cycle per process, timed from before `import execnet` (a program's first
  gateway, imports included); --cycles is ignored;
- SCENARIO:CASE (e.g. groups:popen_8, rsync:full): a case of benchmarks/scenarios run
  under each tree, `--cycles` runs per process (seconds per run, as the scenario
  reports them, shown in ms).

On a shared, loaded machine the elapsed times of one tree spread over tens of ms;
`--measure cpu` (user+system time of the driver and its reaped children) and
`--per-process min` are much less moved by other load, and resolve differences below
1 ms where the elapsed medians cannot.

Used to decide which start-up tricks stay (benchmarks/README.md, "Start-up tricks we
keep, and what each saves"): a trick stays where it saves at least 0.5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from _measure import DROPPED_ENV

sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))
from startup import other_cpython  # a scenario module, found through its folder

# Runs in the measured process: prints one JSON list of cycle times (seconds).
_DRIVER = r"""
import json, resource, sys, time
case, cycles, spec, tree = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cpu = sys.argv[5] == "cpu"


def now():
    if cpu:  # this process and its reaped children, user and system (getrusage: in µs)
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total
    return time.perf_counter()


start = now()
import execnet
import execnet_transport
if not execnet_transport.__file__.startswith(tree):
    sys.exit(f"execnet_transport comes from {execnet_transport.__file__}, not {tree}")
source = "import execnet; channel.send(1)" if case == "worker_import" else (
    "import os; channel.send(os.getpid())")

def cycle():
    gateway = execnet.makegateway(spec)
    channel = gateway.remote_exec(source)
    channel.receive()
    channel.waitclose()
    gateway.exit()
    gateway.join()
    if cpu:  # reaped, so its CPU time counts (trees before wait_child: _wait_process)
        (getattr(gateway, "wait_child", None) or gateway._wait_process)(30)

if case == "cold":
    cycle()
    print(json.dumps([now() - start]))
    sys.exit(0)
cycle()  # warm up
times = []
for _ in range(cycles):
    begin = now()
    cycle()
    times.append(now() - begin)
print(json.dumps(times))
"""


def tree_path(tree: Path) -> str:
    sources = sorted(str(p) for p in (tree / "packages").glob("*/src"))
    if not sources:
        raise SystemExit(f"{tree}: no packages/*/src")
    return os.pathsep.join(sources)


SCENARIOS = Path(__file__).resolve().parent / "scenarios"
START_UP_CASES = ("popen", "popen_other", "worker_import", "cold")


def run_once(
    python: str, tree: Path, case: str, cycles: int, spec: str, *, measure: str = "wall"
) -> List[float]:
    # As users run: with bytecode caching (benchmarks/_measure.py drops the same variables).
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PYTHONPATH"] = tree_path(tree)
    if case in START_UP_CASES:
        command = [python, "-c", _DRIVER, case, str(cycles), spec, str(tree), measure]
    else:
        scenario, _, name = case.partition(":")
        script = SCENARIOS / f"{scenario}.py"
        command = [python, str(script), "--case", name, "--repeat", str(cycles)]
    out = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {out.stderr.strip()[-2000:]}")
    record = json.loads(out.stdout.strip().splitlines()[-1])
    if isinstance(record, dict):  # a scenario's line: {"case", "seconds": [...], ...}
        if "seconds" not in record:
            raise SystemExit(f"{tree}: {case}: {record}")
        record = record["seconds"]
    times: List[float] = record
    return times


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument(
        "--case", default="popen", help=f"{', '.join(START_UP_CASES)} or SCENARIO:CASE"
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--python", default=sys.executable, help="the measured interpreter")
    parser.add_argument(
        "--measure",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: user+system time of the process and its children "
        "(start-up cases only; far less moved by other load on the machine)",
    )
    parser.add_argument(
        "--per-process",
        choices=("median", "min"),
        default="median",
        help="what stands for one process's cycles (min: the least disturbed one)",
    )
    args = parser.parse_args(argv)
    trees: Dict[str, Path] = {}
    for item in args.tree:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--tree wants NAME=PATH, not {item!r}")
        trees[name] = Path(path).resolve()
    if args.measure == "cpu" and args.case not in START_UP_CASES:
        parser.error("--measure cpu times the start-up cases only")
    if args.case not in START_UP_CASES and ":" not in args.case:
        parser.error(f"unknown case {args.case!r}: {', '.join(START_UP_CASES)} or SCENARIO:CASE")
    spec = "popen"
    if args.case == "popen_other":
        other = other_cpython()
        if other is None:
            raise SystemExit("no other CPython under pyenv")
        spec = f"popen//python={other}"
    names = list(trees)
    medians: Dict[str, List[float]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            times = run_once(
                args.python, trees[name], args.case, args.cycles, spec, measure=args.measure
            )
            pick = min if args.per_process == "min" else statistics.median
            medians[name].append(pick(times) * 1000)
    base = names[0]
    print(
        f"case {args.case}, {args.rounds} rounds x {args.cycles} cycles, {args.measure} ms "
        f"(per process: {args.per_process}; lower is better)"
    )
    print(f"{'tree':<24} {'median':>8} {'min':>8}   vs {base}: median diff [quartiles]")
    for name in names:
        line = f"{name:<24} {statistics.median(medians[name]):8.2f} {min(medians[name]):8.2f}"
        if name != base:
            diffs = sorted(a - b for a, b in zip(medians[name], medians[base]))
            quartiles = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else diffs * 3
            line += (
                f"   {statistics.median(diffs):+7.2f} [{quartiles[0]:+.2f}, {quartiles[2]:+.2f}]"
            )
        print(line)


if __name__ == "__main__":
    main()
