"""Ours beside its peers: execnet 2.1.2, mitogen (local and fork) and rpyc (classic).

run.py calls `run_peers` after the scenarios (or alone, with `--only peers`). Each peer
case (benchmarks/peers/_work.py) runs in a fresh process per side per round, the sides
taking turns in the order of `SIDES`, each under its own venv: `original` (execnet
2.1.2), `ours`, `mitogen` and `rpyc` (made from the package index by
`tools.oracle.make_venv`; the peers are oracles only, never imported by our packages).

A side is a driver script in benchmarks/peers/ with arguments: one driver serves every
execnet side, parametrized by its gateway spec, so a new way of ours to start workers is
one more line in SIDES (like `ours (fork)`, spec `popen//fork`); while the installed
execnet does not honour a key of the spec, its driver skips every case saying so and the
column reads n/a. `markdown` gives the two tables RESULTS.md holds: each side's figure,
and ours/peer ratios.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from _measure import Command, Runner, Side, cell, compare, figures

PEERS = Path(__file__).resolve().parent / "peers"

# venv name -> requirements; each is made by tools.oracle.make_venv as bench-<name>
PEER_REQUIREMENTS: Dict[str, List[str]] = {
    "mitogen": ["mitogen==0.3.54"],
    "rpyc": ["rpyc==6.0.2"],
}

CASES = ("start_first_answer", "start_to_exit", "roundtrip", "bulk_send", "small_send",
         "workers_8", "workers_32")  # fmt: skip


@dataclass(frozen=True)
class PeerSide:
    """One column of the peer table: which venv runs which driver with which arguments.

    `ours` sides are compared with every side that is not ours."""

    key: str  # its name in results.json
    label: str  # its column heading
    venv: str  # "original", "ours", or a key of PEER_REQUIREMENTS
    driver: str  # a file in benchmarks/peers/
    args: Tuple[str, ...] = ()
    ours: bool = False
    env: Tuple[Tuple[str, str], ...] = ()  # variables added to the process's environment

    def command(self, python: str, case: str) -> Command:
        argv = [python, str(PEERS / self.driver), *self.args, "--case", case, "--repeat", "1"]
        return Command(argv, dict(self.env))


def execnet_side(key: str, label: str, venv: str, spec: str, ours: bool) -> PeerSide:
    """A column measured through the public execnet API over gateways made with `spec`."""
    return PeerSide(key, label, venv, "execnet_side.py", ("--spec", spec), ours)


SIDES: Tuple[PeerSide, ...] = (
    execnet_side("original", "execnet 2.1.2", "original", "popen", ours=False),
    execnet_side("ours", "ours", "ours", "popen", ours=True),
    execnet_side("ours-fork", "ours (fork)", "ours", "popen//fork", ours=True),
    PeerSide("mitogen-local", "mitogen local", "mitogen", "mitogen_side.py", ("--mode", "local")),
    PeerSide("mitogen-fork", "mitogen fork", "mitogen", "mitogen_side.py", ("--mode", "fork")),
    PeerSide("rpyc", "rpyc classic", "rpyc", "rpyc_side.py"),
)


def run_peers(
    runner: Runner,
    pythons: Dict[str, str],
    cases: List[str],
    sides: Tuple[PeerSide, ...] = SIDES,
    missing: Optional[Dict[str, str]] = None,
) -> List[Dict[str, Any]]:
    """Every case in `cases` under every side, alternating; one summary entry per case.

    `pythons` maps a venv name to its interpreter; `missing` maps a venv name that could
    not be made to why (its sides then fail with that reason, the others run)."""
    missing = missing or {}
    entries = []
    for case in cases:
        print(f"peers:{case} ...", file=sys.stderr, flush=True)
        commands = {
            side.key: side.command(pythons[side.venv], case)
            for side in sides
            if side.venv not in missing
        }
        ran = runner.alternate(commands, case) if commands else {}
        results = {
            side.key: ran[side.key]
            if side.key in ran
            else Side(error=f"no {side.venv} venv: {missing[side.venv]}")
            for side in sides
        }
        entries.append(summarize(case, results, sides))
    return entries


def summarize(case: str, results: Dict[str, Side], sides: Tuple[PeerSide, ...]) -> Dict[str, Any]:
    """A case's entry in results.json: each side's figures, and for each ours side its
    ratios to every other side (ours/other of the figure; see _measure.compare)."""
    shown, by_side = figures(results)
    ratios = {
        f"{ours.key}/{other.key}": ratio
        for ours in sides
        if ours.ours
        for other in sides
        if not other.ours
        for ratio in [compare(results[ours.key], results[other.key], shown["display"]["mode"])]
        if ratio
    }
    return {"case": case, **shown, "sides": by_side, "ratios": ratios}


# ---------------------------------------------------------------- tables


def in_our_favour(entry: Dict[str, Any], ratio: float) -> bool:
    return ratio < 1.0 if entry["display"]["better"] == "lower" else ratio > 1.0


def figure_table(entries: List[Dict[str, Any]], sides: Tuple[PeerSide, ...]) -> str:
    head = "| case | figure | " + " | ".join(f"{s.label} median (min-max)" for s in sides) + " |"
    rows = [head, "|---|---|" + "---|" * len(sides)]
    for e in entries:
        label = f"{e['display']['label']}, {e['display']['better']} is better"
        cells = [cell(e["sides"][s.key], skipped="n/a") for s in sides]
        rows.append(f"| {e['case']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ratio_table(entries: List[Dict[str, Any]], sides: Tuple[PeerSide, ...]) -> str:
    """ours/peer per case and ours side, median (best/best); bold where not in our favour."""
    others = [s for s in sides if not s.ours]
    head = "| case | ours side | " + " | ".join(f"vs {s.label}" for s in others) + " |"
    rows = [head, "|---|---|" + "---|" * len(others)]
    for e in entries:
        for ours in (s for s in sides if s.ours and e["sides"][s.key].get("median")):
            cells = []
            for other in others:
                ratio = e["ratios"].get(f"{ours.key}/{other.key}")
                if ratio is None:
                    cells.append("-")
                    continue
                text = f"{ratio['ratio']:.2f}x"
                text = text if in_our_favour(e, ratio["ratio"]) else f"**{text}**"
                cells.append(f"{text} ({ratio['best_ratio']:.2f}x)")
            rows.append(f"| {e['case']} | {ours.label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def favour_summary(entries: List[Dict[str, Any]], sides: Tuple[PeerSide, ...]) -> str:
    """How many ours/peer ratios are in our favour, and which are not."""
    labels = {s.key: s.label for s in sides}
    total, against = 0, []
    for e in entries:
        for pair, ratio in e["ratios"].items():
            total += 1
            if not in_our_favour(e, ratio["ratio"]):
                ours, other = pair.split("/")
                against.append(
                    f"{e['case']}: {labels[ours]} vs {labels[other]} {ratio['ratio']:.2f}x"
                )
    text = f"In our favour: {total - len(against)} of {total} ours/peer ratios (medians)."
    return text + (" Not: " + "; ".join(against) + "." if against else "")


def memory_table(entries: List[Dict[str, Any]], sides: Tuple[PeerSide, ...]) -> str:
    rows = []
    for e in entries:
        keys = sorted({k for s in sides for k in e["sides"][s.key]["extra"] if k.startswith("rss")})
        for key in keys:
            process = key[len("rss_") :].replace("_mib", "")
            values = [e["sides"][s.key]["extra"].get(key) for s in sides]
            cells = [f"{v:.0f}" if v is not None else "-" for v in values]
            rows.append(f"| {e['case']} | {process} | " + " | ".join(cells) + " |")
    if not rows:
        return ""
    head = "| case | process | " + " | ".join(s.label for s in sides) + " |"
    return "\n".join([head, "|---|---|" + "---|" * len(sides), *rows])


def problems(entries: List[Dict[str, Any]], sides: Tuple[PeerSide, ...]) -> str:
    """Why a cell reads n/a or FAILED: one line per side and reason, naming the cases."""
    reasons: Dict[Tuple[str, str, str], List[str]] = {}  # (side, kind, text) -> cases
    for e in entries:
        for s in sides:
            result = e["sides"][s.key]
            if "error" in result:
                reasons.setdefault((s.label, "failed", result["error"]), []).append(e["case"])
            elif "skipped" in result:
                reasons.setdefault((s.label, "n/a", result["skipped"]), []).append(e["case"])
    lines = []
    for (label, kind, text), cases in reasons.items():
        where = "every case" if len(cases) == len(entries) > 1 else ", ".join(cases)
        if kind == "failed":
            indented = text.replace("\n", "\n    ")
            lines.append(f"- {label}, {where}: failed:\n\n    {indented}\n")
        else:
            lines.append(f"- {label}, {where}: n/a, {text}")
    return "\n".join(lines)


def markdown(report: Dict[str, Any], sides: Tuple[PeerSide, ...] = SIDES) -> str:
    """The peer section of RESULTS.md (report: run.py's, with "peers" entries)."""
    entries = report["peers"]
    versions = report["meta"]["versions"]
    used = "; ".join(
        f"{venv}: " + ", ".join(f"{k} {v}" for k, v in versions[venv].items())
        for venv in ("mitogen", "rpyc")
        if venv in versions
    )
    parts = [
        "## Peers: ours beside execnet 2.1.2, mitogen and rpyc",
        "",
        "Generated by the same run (`benchmarks/peer_runs.py`; see README.md): each peer case "
        f"ran in {report['meta']['rounds']} fresh process(es) per side, the sides taking turns "
        "in the order of the columns. Every side first makes one untimed worker and keeps it "
        "open while the case runs (warm imports; a fork server, where a side has one, up). "
        "n/a: the side cannot do the case here (the reason is listed below the tables).",
        "",
        f"- peer versions: {used}" if used else "- peer versions: -",
        "",
        figure_table(entries, sides),
        "",
        "### Ours / peer (median ratio, best/best in brackets; bold: not in our favour)",
        "",
        "For times (ms, µs) below 1 is in our favour, for rates (.../s) above 1.",
        "",
        ratio_table(entries, sides),
        "",
        favour_summary(entries, sides),
        "",
    ]
    memory = memory_table(entries, sides)
    if memory:
        parts += ["### Peak memory (peers, MiB)", "", memory, ""]
    trouble = problems(entries, sides)
    if trouble:
        parts += ["### What a side cannot do here, and failures", "", trouble, ""]
    return "\n".join(parts)


def describe(entries: List[Dict[str, Any]], sides: Tuple[PeerSide, ...] = SIDES) -> str:
    """The peer tables for stdout."""
    return "\n\n".join(
        [figure_table(entries, sides), ratio_table(entries, sides), favour_summary(entries, sides)]
    )
