"""Profile one benchmark case with py-spy, both processes, and list the hot spots.

    python benchmarks/profile.py roundtrip:roundtrip              # under ours
    python benchmarks/profile.py bulk:send --side original --quick

py-spy (from the package index, installed into the side's environment on first use)
samples the scenario process and its children (`--subprocesses`: the remote side of a
popen gateway too) and writes collapsed stacks; this script sums them per process
(`local` = the scenario process, `remote` = its children) and prints the lines with the
most samples on top of the stack (self) and the functions with the most samples anywhere
on the stack (inclusive), as file:line. Only threads holding the GIL are sampled
(`--gil`; `--waiting` samples all), so the figures are where Python CPU time goes,
not where threads wait in a read or a lock.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Counter, Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # benchmarks/run.py: the environments and the child env

PY_SPY = "py-spy==0.4.2"
STACK = re.compile(
    r'^(?P<processes>(?:process \d+:".*?"(?:;|(?= \d+$)))+)(?P<frames>.*?) (?P<count>\d+)$',
    re.DOTALL,
)
PROCESS = re.compile(r'process \d+:"')


def ensure_py_spy(python: str) -> str:
    tool = Path(python).parent / "py-spy"
    if not tool.exists():
        subprocess.run([python, "-m", "pip", "install", "--quiet", PY_SPY], check=True)
    return str(tool)


def records(raw: str) -> Iterator[Tuple[str, List[str], int]]:
    """(role, frames outermost first, samples) per collapsed stack.

    A record starts with one `process PID:"command line"` frame per process level
    (the command line of a bootstrap may span lines); role is `local` for the scenario
    process itself, `remote` for its children.
    """
    for record in re.split(r"\n(?=process \d+:\")", raw.strip()):
        match = STACK.match(record)
        if match is None:
            continue
        processes = PROCESS.findall(match["processes"])
        role = "local" if len(processes) <= 1 else "remote"
        frames = [f for f in match["frames"].split(";") if f and not f.startswith("thread ")]
        yield role, frames, int(match["count"])


def without_line(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def summarize(raw: str, top: int) -> str:
    totals: Counter[str] = collections.Counter()
    own: Dict[str, Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: Dict[str, Counter[str]] = collections.defaultdict(collections.Counter)
    for role, frames, count in records(raw):
        if not frames:
            continue
        totals[role] += count
        own[role][frames[-1]] += count
        for function in {without_line(f) for f in frames}:
            inclusive[role][function] += count
    out = []
    for role in ("local", "remote"):
        total = totals[role]
        if not total:
            continue
        out.append(f"\n## {role} process(es): {total} samples\n\nself (top of stack):")
        out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own[role].most_common(top)]
        out.append("\ninclusive (anywhere on the stack):")
        out += [
            f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive[role].most_common(top)
        ]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="scenario:case")
    parser.add_argument("--side", choices=run.SIDES, default="ours")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--worktree", action="store_true", help="ours from the working tree, not HEAD"
    )
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument(
        "--waiting", action="store_true", help="also sample threads not holding the GIL"
    )
    args = parser.parse_args(argv)
    scenario, _, case = args.target.partition(":")
    base = getattr(sys, "_base_executable", None) or sys.executable
    python = (
        run.make_ours(base, "worktree" if args.worktree else "head")
        if args.side == "ours"
        else run.make_original(base)
    )
    py_spy = ensure_py_spy(python)
    with tempfile.TemporaryDirectory(prefix="execnet-profile-") as tmp:
        raw = args.raw or Path(tmp) / "stacks.txt"
        command = [py_spy, "record", "--subprocesses", "--format", "raw", "--rate",
                   str(args.rate), "--output", str(raw), "--",
                   python, str(run.SCENARIOS / f"{scenario}.py"), "--repeat", "1"]  # fmt: skip
        if case:
            command += ["--case", case]
        if not args.waiting:
            command.insert(2, "--gil")
        done = subprocess.run(
            command, env=run.child_env(args.quick), cwd=tmp, check=False, capture_output=True
        )
        sys.stdout.write(done.stdout.decode(errors="replace"))
        if not raw.exists():  # py-spy may exit non-zero after writing ("No child process")
            sys.stderr.write(done.stderr.decode(errors="replace"))
            return 1
        print(f"# py-spy profile of {args.target} under {args.side}")
        print(summarize(raw.read_text(), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
