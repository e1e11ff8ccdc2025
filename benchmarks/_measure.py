"""Measured processes and their figures: what run.py and peers.py share.

A benchmark case runs in a fresh process per repeat; `Runner.alternate` starts the
processes of several sides in turn (A, B, C, A, B, C, ...) so that every side sees the
same machine load, and collects each side's seconds in a `Side`. `display`, `figure`
and `side_figures` turn seconds into the figure a table shows (ms, µs per item, or a
rate), and `cell` formats one side's figure for a markdown table.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

MIN_TIMEOUT = 120.0  # seconds: the least a process gets, however fast the reference side was

# Not passed on to the measured processes. PYTHONDONTWRITEBYTECODE: users run with
# bytecode caching, so the benchmarks do too.
DROPPED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "EXECNET_DEBUG",
    "PYTHONDONTWRITEBYTECODE",
)


def child_env(quick: bool) -> Dict[str, str]:
    """The environment of every measured process (`EXECNET_BENCH_QUICK` set for --quick)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in DROPPED_ENV and not k.startswith(("PYTEST_", "HATCH_"))
    }
    env["EXECNET_BENCH_QUICK"] = "1" if quick else "0"
    return env


@dataclass
class Side:
    """The runs of one side of one case: seconds per run, or why it has none."""

    seconds: List[float] = field(default_factory=list)
    unit: str = "run"
    amount: float = 1.0
    extra_runs: List[Dict[str, float]] = field(default_factory=list)
    error: Optional[str] = None
    skipped: Optional[str] = None

    @property
    def extra(self) -> Dict[str, float]:
        """Per-case figures over the runs: the peak for memory (rss_*), else the median."""
        keys = sorted({key for run in self.extra_runs for key in run})
        merged = {}
        for key in keys:
            values = [float(run[key]) for run in self.extra_runs if key in run]
            merged[key] = max(values) if key.startswith("rss") else statistics.median(values)
        return merged

    def add(self, record: Dict[str, Any]) -> None:
        """Take one process's JSON record (timings, a skip or an error)."""
        if "error" in record:
            self.error = str(record["error"])
        elif "skipped" in record:
            self.skipped = str(record["skipped"])
        else:
            self.seconds.extend(float(s) for s in record["seconds"])
            self.unit = str(record.get("unit", "run"))
            self.amount = float(record.get("amount", 1.0))
            self.extra_runs.append(dict(record.get("extra") or {}))


class Command(NamedTuple):
    """One side's process for a case: its argv, and variables added to the environment."""

    argv: List[str]
    env: Optional[Dict[str, str]] = None


def tail(text: str, lines: int = 6) -> str:
    """The last non-empty lines of a process's output: what an error report shows."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept) or "(no output)"


@dataclass
class Runner:
    """How each measured process is started: environment, folder, time limit, rounds."""

    env: Dict[str, str]
    cwd: str
    timeout: float
    rounds: int

    def run_command(
        self, command: Command, case: str, timeout: float
    ) -> Tuple[Dict[str, Any], float]:
        """One process, one repeat of one case: (the JSON record or {'error': text}, wall s).

        The process gets its own session, so a hang is ended with everything it started
        (the gateways' children too)."""
        start = time.monotonic()
        # Files, not pipes: a child left behind holding them must not stall the read.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(
                command.argv,
                stdout=out,
                stderr=err,
                text=True,
                env={**self.env, **(command.env or {})},
                cwd=self.cwd,
                start_new_session=True,
            )
            try:
                process.wait(timeout=timeout)
                failure = None
            except subprocess.TimeoutExpired:
                failure = f"timed out after {timeout:.0f} s"
            wall = time.monotonic() - start
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the hung case, or leftovers
            process.wait()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if failure:
            return {"error": failure}, wall
        for line in reversed(stdout.splitlines()):
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("case") == case:
                if process.returncode != 0 and "skipped" not in record:
                    break
                return dict(record), wall
        return {"error": f"exit {process.returncode}: {tail(stderr or stdout)}"}, wall

    def alternate(self, commands: Dict[str, Command], case: str) -> Dict[str, Side]:
        """`rounds` processes per side, the sides taking turns in the order given.

        The first side is the reference: once it has succeeded in a round, a process of
        another side that takes ten times as long (and at least MIN_TIMEOUT) is hung.
        A side that fails or skips once is not run again for this case."""
        return self.alternate_cases([(commands, case)])[0]

    def alternate_cases(self, runs: List[Tuple[Dict[str, Command], str]]) -> List[Dict[str, Side]]:
        """alternate() for several cases at once: every round runs each case once per
        side, so cases compared with each other (plain and TLS) see the same load too."""
        results = [{name: Side() for name in commands} for commands, _ in runs]
        for _ in range(self.rounds):
            for (commands, case), sides in zip(runs, results):
                self._round(commands, case, sides)
        return results

    def _round(self, commands: Dict[str, Command], case: str, sides: Dict[str, Side]) -> None:
        timeout = self.timeout
        for index, (name, command) in enumerate(commands.items()):
            side = sides[name]
            if side.error or side.skipped:
                continue
            record, wall = self.run_command(command, case, timeout)
            if index == 0 and "error" not in record and "skipped" not in record:
                timeout = min(self.timeout, max(MIN_TIMEOUT, 10 * wall))
            side.add(record)


# ---------------------------------------------------------------- figures


def display(unit: str, amount: float) -> Tuple[str, str, float]:
    """(mode, label, factor): how a case is shown. A figure is factor*seconds/amount for
    'time' (lower is better) or amount/seconds for 'rate' (higher is better)."""
    if amount == 1.0:
        return "time", "ms", 1e3
    if unit in ("roundtrip", "call", "op"):
        return "time", f"µs/{unit}", 1e6
    return "rate", f"{unit}/s", 1.0


def figure(mode: str, factor: float, seconds: float, amount: float) -> float:
    return factor * seconds / amount if mode == "time" else amount / seconds


def side_figures(side: Side, mode: str, factor: float) -> Dict[str, Any]:
    """One side's entry in results.json: raw seconds, extra, and the figure's median,
    min and max (when it has runs), its error or skip reason (when it has one)."""
    values = [figure(mode, factor, s, side.amount) for s in side.seconds]
    result: Dict[str, Any] = {"seconds": side.seconds, "extra": side.extra}
    if values:
        result.update(median=statistics.median(values), min=min(values), max=max(values))
    if side.error:
        result["error"] = side.error
    if side.skipped:
        result["skipped"] = side.skipped
    return result


def figures(sides: Dict[str, Side]) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """(how the case is shown, each side's figures): unit and amount come from the first
    side with runs; `display` says the mode, the label and which direction is better."""
    ok = [side for side in sides.values() if side.seconds]
    unit, amount = (ok[0].unit, ok[0].amount) if ok else ("run", 1.0)
    mode, label, factor = display(unit, amount)
    better = "lower" if mode == "time" else "higher"
    shown = {"unit": unit, "amount": amount,
             "display": {"mode": mode, "label": label, "better": better}}  # fmt: skip
    return shown, {name: side_figures(side, mode, factor) for name, side in sides.items()}


def compare(ours: Side, other: Side, mode: str) -> Dict[str, float]:
    """ours/other of the figure, from the medians (`ratio`) and from the best runs
    (`best_ratio`, less moved by a noisy neighbour), and of the time per item
    (`time_ratio`); empty when a side has no runs. For a rate above 1 is better, for a
    time below 1."""
    if not ours.seconds or not other.seconds:
        return {}
    time_ratio = per_item(ours) / per_item(other)
    best_ratio = per_item(ours, best=True) / per_item(other, best=True)
    if mode == "time":
        return {"time_ratio": time_ratio, "ratio": time_ratio, "best_ratio": best_ratio}
    return {"time_ratio": time_ratio, "ratio": 1 / time_ratio, "best_ratio": 1 / best_ratio}


def per_item(side: Side, best: bool = False) -> float:
    """Seconds per item of the median run (or of the best run): what ratios compare."""
    seconds = min(side.seconds) if best else statistics.median(side.seconds)
    return seconds / side.amount


def num(value: float) -> str:
    if value >= 10_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(side: Dict[str, Any], skipped: str = "skipped") -> str:
    """A side's figure as a table cell: median (min-max), or what happened instead."""
    if "error" in side and "median" not in side:
        return "**FAILED**"
    if "skipped" in side:
        return skipped
    if "median" not in side:
        return "-"
    text = f"{num(side['median'])} ({num(side['min'])}-{num(side['max'])})"
    return text + (" **FAILED**" if "error" in side else "")
