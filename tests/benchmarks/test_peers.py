"""The peer runner's plumbing: every side answers a quick case; tables; spec checks.

No timing is asserted: the figures only have to exist, and the ratios to follow from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict

import parts
import pytest

RUN = parts.ROOT / "benchmarks" / "run.py"
PEERS = parts.ROOT / "benchmarks" / "peers"


@pytest.fixture(scope="module")
def peer_pythons(run: ModuleType) -> Dict[str, str]:
    """mitogen's and rpyc's venvs, made from the package index as the runner makes them."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    pythons = {}
    for name, requirements in run.peer_runs.PEER_REQUIREMENTS.items():
        try:
            pythons[name] = run.make_peer(name, base)
        except subprocess.CalledProcessError as exc:
            parts.missing(f"could not install {requirements} from the package index: {exc}")
    return pythons


def _driver(
    run: ModuleType, python: str, driver: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """A driver's process, started as the runner starts it (one case, or --list)."""
    return subprocess.run(
        [python, str(PEERS / driver), *args],
        capture_output=True, text=True, timeout=60, check=False, env=run.child_env(True),
    )  # fmt: skip


@pytest.mark.timeout(400)  # the first call makes the mitogen and rpyc venvs
def test_every_side_answers_a_quick_case_and_the_tables_follow(
    tmp_path: Path, peer_pythons: Dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "peers:roundtrip", "--output",
         str(tmp_path), "--original-python", parts.oracle_python(),
         "--ours-python", sys.executable, "--timeout", "100"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["results"] == []  # --only peers: no scenario
    assert report["meta"]["versions"]["mitogen"]["mitogen"] == "0.3.54"
    assert report["meta"]["versions"]["rpyc"]["rpyc"] == "6.0.2"
    [entry] = report["peers"]
    assert entry["case"] == "roundtrip"
    assert entry["display"] == {"mode": "time", "label": "µs/roundtrip", "better": "lower"}
    for key in ("original", "ours", "mitogen-local", "mitogen-fork", "rpyc"):
        side = entry["sides"][key]
        assert "error" not in side, (key, side)
        assert len(side["seconds"]) == 1
        assert side["median"] > 0
    fork = entry["sides"]["ours-fork"]  # figures once ours honours popen//fork, else n/a
    assert "median" in fork or "'fork' not honoured" in fork["skipped"], fork
    ratios = entry["ratios"]
    assert set(ratios) >= {"ours/original", "ours/mitogen-local", "ours/mitogen-fork", "ours/rpyc"}
    ours, rpyc = entry["sides"]["ours"]["median"], entry["sides"]["rpyc"]["median"]
    assert ratios["ours/rpyc"]["ratio"] == pytest.approx(ours / rpyc)
    results_md = (tmp_path / "RESULTS.md").read_text()
    assert "(no scenario in this run)" in results_md
    assert "## Peers: ours beside execnet 2.1.2, mitogen and rpyc" in results_md
    assert "| roundtrip | µs/roundtrip, lower is better |" in results_md
    assert "| roundtrip | ours | " in results_md
    assert results_md.index("## Peers") < results_md.index("## Notes")


def test_every_driver_lists_the_peer_cases(run: ModuleType, peer_pythons: Dict[str, str]) -> None:
    pythons = {"original": parts.oracle_python(), **peer_pythons}
    for side in run.peer_runs.SIDES:
        if side.venv == "ours":
            continue  # the same driver as "original"
        listed = _driver(run, pythons[side.venv], side.driver, *side.args, "--list")
        assert listed.returncode == 0, listed.stderr
        assert tuple(listed.stdout.split()) == run.peer_runs.CASES, side


def test_a_spec_key_the_installed_execnet_ignores_makes_the_side_skip(run: ModuleType) -> None:
    original = parts.oracle_python()  # execnet 2.1.2 never knows `fork`
    ignored = _driver(run, original, "execnet_side.py", "--spec", "popen//fork", "--case",
                      "roundtrip", "--repeat", "1")  # fmt: skip
    assert ignored.returncode == 0, ignored.stderr
    record = json.loads(ignored.stdout.splitlines()[-1])
    assert record["case"] == "roundtrip"
    assert record["skipped"].startswith("spec key 'fork' not honoured by execnet 2.1.2:")
    assert "plain popen child" in record["skipped"]
    unchecked = _driver(run, original, "execnet_side.py", "--spec", "popen//turbo", "--case",
                        "workers_8", "--repeat", "1")  # fmt: skip
    record = json.loads(unchecked.stdout.splitlines()[-1])
    assert record["skipped"] == (
        "spec 'popen//turbo': no check that execnet honours the key(s) ['turbo']"
    )


def test_the_tables_show_ratios_in_and_out_of_our_favour(run: ModuleType) -> None:
    peer_runs = run.peer_runs
    Side = run.Side
    sides = {
        "original": Side([0.040, 0.050, 0.045]),
        "ours": Side([0.020, 0.030, 0.025]),
        "ours-fork": Side(skipped="spec key 'fork' not honoured by execnet 2.2.0: plain"),
        "mitogen-local": Side([0.100]),
        "mitogen-fork": Side([0.005]),
        "rpyc": Side(error="exit 1: boom"),
    }
    entry = peer_runs.summarize("start_to_exit", sides, peer_runs.SIDES)
    assert entry["sides"]["ours"]["median"] == pytest.approx(25.0)  # ms
    assert set(entry["ratios"]) == {"ours/original", "ours/mitogen-local", "ours/mitogen-fork"}
    assert entry["ratios"]["ours/original"]["ratio"] == pytest.approx(25 / 45)
    assert entry["ratios"]["ours/original"]["best_ratio"] == pytest.approx(20 / 40)
    assert entry["ratios"]["ours/mitogen-fork"]["ratio"] == pytest.approx(5.0)

    rates = {key: Side([2.0], "MiB", 256.0) for key in sides}
    rates["ours"] = Side([0.5], "MiB", 256.0)
    rates["ours-fork"] = Side(skipped="spec key 'fork' not honoured by execnet 2.2.0: plain")
    rate_entry = peer_runs.summarize("bulk_send", rates, peer_runs.SIDES)
    assert rate_entry["ratios"]["ours/rpyc"]["ratio"] == pytest.approx(4.0)  # rate: higher wins

    entries = [entry, rate_entry]
    figures = peer_runs.figure_table(entries, peer_runs.SIDES).splitlines()
    assert figures[2] == (
        "| start_to_exit | ms, lower is better | 45.0 (40.0-50.0) | 25.0 (20.0-30.0) | n/a "
        "| 100 (100-100) | 5.00 (5.00-5.00) | **FAILED** |"
    )
    assert figures[3].startswith("| bulk_send | MiB/s, higher is better | 128 (128-128) | 512 ")
    ratios = peer_runs.ratio_table(entries, peer_runs.SIDES)
    assert (
        "| start_to_exit | ours | 0.56x (0.50x) | 0.25x (0.20x) | **5.00x** (4.00x) | - |"
    ) in ratios
    assert "| bulk_send | ours | 4.00x (4.00x) |" in ratios
    assert "ours (fork)" not in ratios  # no figures, no ratio row
    summary = peer_runs.favour_summary(entries, peer_runs.SIDES)
    assert summary.startswith("In our favour: 6 of 7 ours/peer ratios (medians).")
    assert "start_to_exit: ours vs mitogen fork 5.00x" in summary
    problems = peer_runs.problems(entries, peer_runs.SIDES)
    assert "- ours (fork), every case: n/a, spec key 'fork' not honoured" in problems
    assert "- rpyc classic, start_to_exit: failed:\n\n    exit 1: boom" in problems


def test_a_peer_venv_that_could_not_be_made_fails_only_its_sides(run: ModuleType) -> None:
    peer_runs = run.peer_runs
    rpyc = [side for side in peer_runs.SIDES if side.venv == "rpyc"]
    runner = run.Runner({}, str(parts.ROOT), 10.0, 1)
    [entry] = peer_runs.run_peers(runner, {}, ["roundtrip"], tuple(rpyc), {"rpyc": "no index"})
    assert entry["sides"]["rpyc"]["error"] == "no rpyc venv: no index"
    assert entry["ratios"] == {}
