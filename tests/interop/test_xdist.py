"""pytest-xdist on our execnet: its own test suite, and a real `-n 2` session.

Both run in a virtual environment holding our six packages and pytest-xdist 3.8.0 but
not the original execnet (see xdist_downstream.py). The expected outcomes are those of
execnet 2.1.2 on this machine, recorded in xdist_oracle_outcomes.json by
`python tests/interop/xdist_downstream.py oracle`.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Container
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _downstream():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("xdist_downstream", HERE / "xdist_downstream.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prepared():  # type: ignore[no-untyped-def]
    downstream = _downstream()
    try:
        downstream.venv_for("ours")
    except subprocess.CalledProcessError as exc:
        from parts import missing

        missing(f"could not build the pytest-xdist environment from the package index: {exc}")
    return downstream


def _failed(ours: dict[str, str], oracle: dict[str, str], known: Container[str]) -> list[str]:
    """Tests that passed under 2.1.2 but not here, or failed outside the known ones."""
    return sorted(
        test
        for test, outcome in ours.items()
        if outcome != "passed"
        and (oracle.get(test) == "passed" or (outcome in ("failed", "error") and test not in known))
    )


def test_pytest_xdist_suite_passes_on_our_execnet() -> None:
    downstream = _prepared()
    oracle: dict[str, str] = json.loads((HERE / "xdist_oracle_outcomes.json").read_text())
    ours: dict[str, str] = downstream.run_suite("ours")
    # A few of pytest-xdist's own tests check which worker gets which scope first, and
    # assume an idle machine (CI shares two cores): what failed runs once more, alone,
    # and must pass then. A failure that repeats is a real one.
    again = _failed(ours, oracle, downstream.KNOWN_FAILURES)
    if again:
        print("pytest-xdist tests run again, alone:", again)
        ours.update(downstream.run_suite("ours", targets=again))
    counts = Counter(ours.values())
    print("pytest-xdist 3.8.0 on our execnet:", downstream.summary(ours))

    lost = sorted(
        test
        for test, outcome in oracle.items()
        if outcome == "passed" and ours.get(test) != "passed"
    )
    new_failures = sorted(
        test
        for test, outcome in ours.items()
        if outcome in ("failed", "error") and test not in downstream.KNOWN_FAILURES
    )
    assert not lost, (
        f"passed with execnet 2.1.2 but not with ours: {[(t, ours.get(t)) for t in lost]}"
    )
    assert not new_failures, f"failures outside the known seven: {new_failures}"
    assert counts["passed"] >= 190
    assert set(oracle) <= set(ours), sorted(set(oracle) - set(ours))


def test_our_serializer_tests_under_pytest_xdist_n2(tmp_path: Path) -> None:
    downstream = _prepared()
    python = downstream.venv_for("ours")
    env = downstream.fresh_packages(tmp_path / "packages")
    result = subprocess.run(
        [str(python), "-m", "pytest", "-n", "2", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'basetemp'}", "tests/execnet_serial"],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    tail = result.stdout[-3000:]
    assert result.returncode == 0, tail + result.stderr[-2000:]
    assert "created: 2/2 workers" in result.stdout, tail
    assert " passed" in result.stdout.splitlines()[-1], tail
    assert " failed" not in result.stdout.splitlines()[-1], tail


FORKED_WORKER_TESTS = """
import os


def _parent_command(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read().split(b"\\0")


def test_forked_from_a_fork_server(worker_id):
    parent = _parent_command(os.getppid())
    with open(f"/proc/{os.getppid()}/stat") as file:
        grandparent = file.read().rsplit(")", 1)[1].split()[1]
    assert b"-c" in parent and b"pytest" not in b" ".join(parent), parent
    assert b"pytest" in b" ".join(_parent_command(int(grandparent)))


def test_takes_the_callers_cwd_and_env():
    assert os.getcwd() == os.environ["EXPECTED_CWD"]
    assert os.environ["EXECNET_FORK"] == "1"
"""


def test_unmodified_xdist_forks_its_workers_under_execnet_fork(tmp_path: Path) -> None:
    """EXECNET_FORK=1: pytest-xdist's popen workers are forked from a fork server."""
    downstream = _prepared()
    python = downstream.venv_for("ours")
    env = downstream.fresh_packages(tmp_path / "packages")
    work = tmp_path / "work"
    work.mkdir()
    (work / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (work / "test_forked.py").write_text(FORKED_WORKER_TESTS)
    env.update({"EXECNET_FORK": "1", "EXPECTED_CWD": str(work)})
    result = subprocess.run(
        [str(python), "-m", "pytest", "-n", "4", "-q", str(work)],
        cwd=work,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert "2 passed" in result.stdout, tail
