"""Run every benchmark scenario under execnet 2.1.2 and under this project, side by side,
then the peer cases beside mitogen and rpyc too.

    python benchmarks/run.py                 # the full suite; writes RESULTS.md + results.json
    python benchmarks/run.py --quick         # a short run, tables on stdout only
    python benchmarks/run.py --only roundtrip,bulk:send --rounds 3
    python benchmarks/run.py --only peers            # the peer table alone

Virtual environments are made (and reused) through `tools.oracle.make_venv`:
`original` holds execnet==2.1.2 from the package index, `ours` holds the packages of
`packages/*` as committed at HEAD (or the working tree, `--ours worktree`). Both get the
same pytest and pytest-xdist 3.8.0; in `ours` pytest-xdist is installed without its
dependencies, so the original execnet never enters it. The peers (peer_runs.py) get one
venv each: `mitogen`, `rpyc`.

Each case runs in a fresh process per repeat, alternating original/ours/original/ours
in the same run, so both sides see the same machine load. A case that fails or hangs
under one side is reported as failed for that side; the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded as a module
import peer_runs
from _measure import Command, Runner, Side, cell, child_env, compare, figures, tail

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SCENARIOS = BENCH / "scenarios"
PACKAGES = ("execnet-serial", "execnet-channel", "execnet-transport", "execnet-group",
            "execnet-rsync", "execnet")  # fmt: skip
TOOLS = ("pytest==8.4.2", "pytest-xdist==3.8.0")
HATCHLING = "hatchling>=1.26"  # builds the HEAD snapshot of ours without build isolation
SIDES = ("original", "ours")
NOTES_HEADING = "## Notes"
PEERS = "peers"  # the name --only selects the peer cases by ("peers", "peers:bulk*")


@dataclass(frozen=True)
class Target:
    """A speed target, judged on the ratio of medians from the same run."""

    kind: str  # "time": ours/original time must be <= ratio; "rate": ours/original rate >= ratio
    ratio: float
    text: str
    absolute: Optional[float] = None  # in display units (ms or µs per item, or items/s)


# (scenario, case) glob patterns -> target (issue 7); the first match wins.
TARGETS: List[Tuple[str, str, Target]] = [
    ("startup", "popen", Target("time", 0.5, "≤ 0.5x (≤ 25 ms)", 25.0)),
    ("roundtrip", "*", Target("time", 0.4, "≤ 0.4x (≤ 35 µs)", 35.0)),
    ("bulk", "*", Target("rate", 2.8, "≥ 2.8x (≥ 1500 MiB/s)", 1500.0)),
    ("small", "*", Target("rate", 2.7, "≥ 2.7x (≥ 300,000/s)", 300_000.0)),
    ("serializer", "*ints*", Target("time", 1 / 3, "≥ 3x faster")),
    ("serializer", "*dict*", Target("time", 1 / 3, "≥ 3x faster")),
    ("serializer", "*report*", Target("time", 1 / 3, "≥ 3x faster")),
    ("groups", "*8", Target("time", 0.55, "≤ 0.55x")),
    ("rsync", "full*", Target("time", 0.7, "≤ 0.7x")),
    ("rsync", "unchanged*", Target("time", 0.75, "≤ 0.75x")),
    ("xdist_session", "*", Target("time", 1.0, "≤ 1.0x")),
]


def target_for(scenario: str, case: str) -> Optional[Target]:
    for scenario_pattern, case_pattern, target in TARGETS:
        if fnmatch.fnmatch(scenario, scenario_pattern) and fnmatch.fnmatch(case, case_pattern):
            return target
    return None


# ---------------------------------------------------------------- environments


def _oracle_tools() -> Any:
    sys.path.insert(0, str(ROOT))
    try:
        from tools import oracle
    finally:
        sys.path.remove(str(ROOT))
    return oracle


def _pip(python: str, *args: str) -> None:
    subprocess.run([python, "-m", "pip", "install", "--quiet", *args], check=True)


def make_original(base_python: Optional[str]) -> str:
    """The interpreter of the environment holding execnet 2.1.2 and the tools."""
    oracle = _oracle_tools()
    requirements = ["execnet==2.1.2", *TOOLS]
    return str(oracle.make_venv("bench-original", requirements, base_python=base_python))


def make_peer(name: str, base_python: Optional[str]) -> str:
    """The interpreter of the environment holding peer `name` (peer_runs.PEER_REQUIREMENTS)."""
    oracle = _oracle_tools()
    requirements = peer_runs.PEER_REQUIREMENTS[name]
    return str(oracle.make_venv(f"bench-{name}", requirements, base_python=base_python))


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def make_ours(base_python: Optional[str], source: str = "head") -> str:
    """The interpreter of an environment holding packages/* and the tools.

    source="head": the packages as committed at HEAD (a `git archive` snapshot, built
    and installed; rebuilt when packages/ differs at HEAD), so a run measures a known
    commit and not a file someone is halfway through editing. source="worktree": the
    working tree, installed editable (changes count at once).
    """
    oracle = _oracle_tools()
    # Per checkout: EXECNET_VENVS may be shared by several checkouts (worktrees), and one
    # environment would be rebuilt under another's run (an A/B of two worktrees, say).
    name = "bench-ours" if source == "head" else "bench-ours-worktree"
    name += "-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
    # pytest's own dependencies come from the index; ours and pytest-xdist are added below.
    ours = str(oracle.make_venv(name, [TOOLS[0], HATCHLING], base_python=base_python))
    venv = Path(ours).parent.parent
    marker = venv / ".bench-ours"
    if source == "head":
        commit = _git("rev-parse", "HEAD")
        tree = _git("rev-parse", f"{commit}:packages")  # rebuild only when packages/ moved
        wanted = json.dumps({"tree": tree, "packages": PACKAGES, "no-deps": TOOLS[1:]})
        built = json.loads(marker.read_text()) if marker.exists() else {}
        if {k: v for k, v in built.items() if k != "commit"} != json.loads(wanted):
            snapshot = venv / "snapshot"
            shutil.rmtree(snapshot, ignore_errors=True)
            snapshot.mkdir()
            archive = subprocess.Popen(
                ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "packages"],
                stdout=subprocess.PIPE,
            )
            subprocess.run(["tar", "-x", "-C", str(snapshot)], stdin=archive.stdout, check=True)
            if archive.wait() != 0:
                raise SystemExit(f"git archive {commit} failed")
            paths = [str(snapshot / "packages" / name) for name in PACKAGES]
            _pip(ours, "--no-deps", "--no-build-isolation", "--force-reinstall", *paths)
            _pip(ours, "--no-deps", *TOOLS[1:])
            marker.write_text(json.dumps({**json.loads(wanted), "commit": commit}))
        expected = str(venv)
    else:
        wanted = json.dumps({"editable": PACKAGES, "no-deps": TOOLS[1:]})
        if not marker.exists() or marker.read_text() != wanted:
            editable = [arg for name in PACKAGES for arg in ("-e", str(ROOT / "packages" / name))]
            _pip(ours, "--no-deps", *editable)
            _pip(ours, "--no-deps", *TOOLS[1:])
            marker.write_text(wanted)
        expected = str(ROOT / "packages")
    where = subprocess.run(
        [ours, "-c", "import importlib.util as u; print(u.find_spec('execnet').origin)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(expected):
        raise SystemExit(f"the 'ours' environment imports execnet from {where}, not {expected}")
    return ours


def describe_ours(python: str, source: str) -> str:
    """What 'ours' was: the commit, and whether uncommitted changes were measured."""
    if source == "head":
        marker = Path(python).parent.parent / ".bench-ours"
        commit = str(json.loads(marker.read_text())["commit"])[:7]
        return f"packages/ as committed in {commit}"
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "packages")
    return f"{commit} + working tree" + (" (with uncommitted changes)" if dirty else "")


def versions(python: str) -> Dict[str, str]:
    code = (
        "import importlib.metadata as m, json, platform\n"
        "names = ['execnet', 'execnet-serial', 'execnet-channel', 'execnet-transport',\n"
        "         'execnet-group', 'execnet-rsync', 'pytest', 'pytest-xdist',\n"
        "         'mitogen', 'rpyc']\n"
        "found = {'python': platform.python_implementation() + ' ' + platform.python_version()}\n"
        "for name in names:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def machine() -> Dict[str, Any]:
    cpu = "unknown"
    mem_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "loadavg_start": list(os.getloadavg()),
    }


# ---------------------------------------------------------------- running


def scenario_names() -> List[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.py") if not p.stem.startswith("_"))


def list_cases(python: str, scenario: str, env: Dict[str, str], cwd: str) -> List[str]:
    out = subprocess.run(
        [python, str(SCENARIOS / f"{scenario}.py"), "--list"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(tail(out.stderr or out.stdout))
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def scenario_commands(pythons: Dict[str, str], scenario: str, case: str) -> Dict[str, Command]:
    """The process of each side (original first: the reference) for one repeat of a case."""
    script = str(SCENARIOS / f"{scenario}.py")
    return {
        side: Command([pythons[side], script, "--case", case, "--repeat", "1"]) for side in SIDES
    }


def summarize(scenario: str, case: str, sides: Dict[str, Side]) -> Dict[str, Any]:
    shown, results = figures(sides)
    entry: Dict[str, Any] = {"scenario": scenario, "case": case, **shown, **results}
    entry.update(compare(sides["ours"], sides["original"], shown["display"]["mode"]))
    target = target_for(scenario, case)
    if target is not None:
        entry["target"] = target.text
        entry["met"] = judge(target, entry)
    return entry


def judge(target: Target, entry: Dict[str, Any]) -> Optional[bool]:
    """Met when the ratio is met (and the absolute figure, where the target names one);
    the reason for a miss is kept in entry['missed']."""
    if "time_ratio" not in entry:
        return None if entry["ours"].get("skipped") else False
    time_ratio = entry["time_ratio"]
    if target.kind == "time":
        ratio_met = time_ratio <= target.ratio
    else:
        ratio_met = 1 / time_ratio >= target.ratio
    absolute_met = True
    if target.absolute is not None:
        ours = entry["ours"]["median"]
        lower = entry["display"]["better"] == "lower"
        absolute_met = ours <= target.absolute if lower else ours >= target.absolute
    if not ratio_met:
        entry["missed"] = "ratio"
    elif not absolute_met:
        entry["missed"] = "absolute figure only"
    return ratio_met and absolute_met


def table(entries: List[Dict[str, Any]]) -> str:
    rows = [
        "| scenario | case | figure | original 2.1.2 median (min-max) | ours median (min-max) "
        "| ours/original | (best/best) | target | met? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        label = f"{e['display']['label']}, {e['display']['better']} is better"
        ratio = f"{e['ratio']:.2f}x" if "ratio" in e else "-"
        best = f"({e['best_ratio']:.2f}x)" if "best_ratio" in e else ""
        met = {True: "met", False: "**missed**", None: "-"}[e.get("met")]
        if "error" in e["ours"]:
            met = "**failed**"
        elif e.get("missed") == "absolute figure only":
            met = "ratio met, **absolute missed**"
        rows.append(
            f"| {e['scenario']} | {e['case']} | {label} | {cell(e['original'])} "
            f"| {cell(e['ours'])} | {ratio} | {best} | {e.get('target', '')} | {met} |"
        )
    return "\n".join(rows)


def memory_table(entries: List[Dict[str, Any]]) -> str:
    rows = []
    for e in entries:
        keys = sorted(set(e["original"]["extra"]) | set(e["ours"]["extra"]))
        for key in (k for k in keys if k.startswith("rss")):
            side = key[len("rss_") :].replace("_mib", "")
            original = e["original"]["extra"].get(key)
            ours = e["ours"]["extra"].get(key)
            cells = [f"{v:.0f}" if v is not None else "-" for v in (original, ours)]
            rows.append(f"| {e['scenario']} | {e['case']} | {side} | {cells[0]} | {cells[1]} |")
    if not rows:
        return ""
    head = [
        "| scenario | case | process | original peak RSS MiB | ours peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(head + rows)


def problems(entries: List[Dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        for name in SIDES:
            side = e[name]
            if "error" in side:
                text = side["error"].replace("\n", "\n    ")
                lines.append(f"- {e['scenario']}:{e['case']} under {name} failed:\n\n    {text}\n")
            elif "skipped" in side:
                lines.append(
                    f"- {e['scenario']}:{e['case']} under {name} skipped: {side['skipped']}"
                )
    return "\n".join(lines)


def markdown(report: Dict[str, Any], notes: str) -> str:
    meta = report["meta"]
    m = meta["machine"]
    quick = meta["quick"]
    load = "at start " + ", ".join(f"{x:.2f}" for x in m["loadavg_start"])
    if "loadavg_end" in m:
        load += ", at end " + ", ".join(f"{x:.2f}" for x in m["loadavg_end"])
    versions_line = "; ".join(
        f"{side}: " + ", ".join(f"{k} {v}" for k, v in meta["versions"][side].items())
        for side in SIDES
    )
    parts = [
        "# Benchmark results: ours vs execnet 2.1.2",
        "",
        "Generated by `python benchmarks/run.py` (`hatch run bench:all`); see README.md. "
        "Each figure is the median over "
        f"{meta['rounds']} fresh process(es) per side, run alternately original/ours in the same "
        "run; the ratio compares the medians (for rates, higher is better; for times, lower) "
        "and decides met/missed; (best/best) compares the best run of each side.",
        "",
        f"- date: {meta['date']} ({meta['duration_s']:.0f} s)" + (" - QUICK run" if quick else ""),
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"load average {load}",
        f"- ours: {meta['ours']}",
        f"- versions: {versions_line}",
        "",
        table(report["results"]) if report["results"] else "(no scenario in this run)",
        "",
    ]
    memory = memory_table(report["results"])
    if memory:
        parts += ["### Peak memory", "", memory, ""]
    trouble = problems(report["results"])
    if trouble:
        parts += ["### Failures and skips", "", trouble, ""]
    if report.get("peers"):
        parts += [peer_runs.markdown(report), ""]
    return "\n".join(parts) + "\n" + notes


def kept_notes(path: Path) -> str:
    """The hand-written part of an existing RESULTS.md (from '## Notes' on)."""
    if not path.exists():
        return f"{NOTES_HEADING}\n\n(none yet)\n"
    text = path.read_text()
    at = text.find("\n" + NOTES_HEADING)
    return text[at + 1 :] if at >= 0 else f"{NOTES_HEADING}\n\n(none yet)\n"


# ---------------------------------------------------------------- main


def selected(only: Optional[str], scenario: str, case: Optional[str] = None) -> bool:
    """Whether --only picks this case (case=None: any case of this scenario)."""
    if not only:
        return True
    for item in only.split(","):
        want_scenario, _, want_case = item.strip().partition(":")
        if fnmatch.fnmatch(scenario, want_scenario) and (
            case is None or fnmatch.fnmatch(case, want_case or "*")
        ):
            return True
    return False


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="less work per case, 1 round")
    parser.add_argument("--rounds", type=int, help="processes per side per case (default 5)")
    parser.add_argument("--only", help="comma-separated scenario[:case] globs")
    parser.add_argument("--output", type=Path, help="folder for RESULTS.md and results.json")
    parser.add_argument("--python", help="base interpreter for the environments")
    parser.add_argument("--timeout", type=float, help="seconds per process (default 900)")
    parser.add_argument("--original-python", help="use this interpreter instead of the venv")
    parser.add_argument("--ours-python", help="use this interpreter instead of the venv")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="a scenario's cases take turns round by round (compare cases of one run)",
    )
    parser.add_argument(
        "--ours",
        choices=("head", "worktree"),
        default="head",
        help="measure packages/* as committed at HEAD (default) or the working tree",
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="leave out the peer cases (mitogen, rpyc)"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    timeout = args.timeout or (300.0 if args.quick else 900.0)
    output = args.output
    if output is None and not args.quick and not args.only:
        output = BENCH  # only a full run replaces the committed figures
    base_python = args.python or getattr(sys, "_base_executable", None) or sys.executable
    with_peers = not args.no_peers and selected(args.only, PEERS)

    started = time.time()
    pythons = {
        "original": args.original_python or make_original(base_python),
        "ours": args.ours_python or make_ours(base_python, args.ours),
    }
    missing: Dict[str, str] = {}  # peer venvs that could not be made, and why
    for name in peer_runs.PEER_REQUIREMENTS if with_peers else ():
        try:
            pythons[name] = make_peer(name, base_python)
        except subprocess.CalledProcessError as exc:
            missing[name] = f"could not install {peer_runs.PEER_REQUIREMENTS[name]}: {exc}"
            print(f"{name}: {missing[name]}", file=sys.stderr)
    env = child_env(args.quick)

    meta: Dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "rounds": rounds,
        "machine": machine(),
        "ours": f"--ours-python {args.ours_python}"
        if args.ours_python
        else describe_ours(pythons["ours"], args.ours),
        "versions": {name: versions(python) for name, python in pythons.items()},
    }
    entries: List[Dict[str, Any]] = []
    peers: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="execnet-bench-") as cwd:
        runner = Runner(env, cwd, timeout, rounds)
        for scenario in scenario_names():
            if not selected(args.only, scenario):
                continue
            try:
                cases = list_cases(pythons["original"], scenario, env, cwd)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"{scenario}: cannot list cases: {exc}", file=sys.stderr)
                broken = {"error": f"--list failed: {exc}", "extra": {}, "seconds": []}
                entries.append(
                    {
                        "scenario": scenario,
                        "case": "*",
                        "unit": "run",
                        "amount": 1.0,
                        "display": {"mode": "time", "label": "ms", "better": "lower"},
                        "original": broken,
                        "ours": dict(broken),
                    }
                )
                continue
            chosen = [case for case in cases if selected(args.only, scenario, case)]
            if args.interleave and chosen:
                print(f"{scenario}:{','.join(chosen)} (in turns) ...", file=sys.stderr, flush=True)
                runs = [(scenario_commands(pythons, scenario, case), case) for case in chosen]
                for case, sides in zip(chosen, runner.alternate_cases(runs)):
                    entries.append(summarize(scenario, case, sides))
                continue
            for case in chosen:
                print(f"{scenario}:{case} ...", file=sys.stderr, flush=True)
                sides = runner.alternate(scenario_commands(pythons, scenario, case), case)
                entries.append(summarize(scenario, case, sides))
        if with_peers:
            cases = [case for case in peer_runs.CASES if selected(args.only, PEERS, case)]
            peers = peer_runs.run_peers(runner, pythons, cases, missing=missing)
    meta["duration_s"] = time.time() - started
    meta["machine"]["loadavg_end"] = list(os.getloadavg())
    report: Dict[str, Any] = {"meta": meta, "results": entries}
    if with_peers:
        report["peers"] = peers

    if entries:
        print(table(entries))
    if peers:
        print("\n" + peer_runs.describe(peers))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        results_md = output / "RESULTS.md"
        text = markdown(report, kept_notes(results_md))
        results_md.write_text(text)
        (output / "results.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {results_md} and {output / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
