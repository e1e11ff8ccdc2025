"""pytest-xdist's own test suite, run against an execnet of our choice.

The downstream proof of the umbrella package: a virtual environment holds pytest-xdist
3.8.0 and its dependencies, with either our six packages (``ours``) or the original
execnet 2.1.2 (``oracle``); pytest-xdist's sdist is downloaded from the package index and
its ``testing/`` folder runs in that environment. Outcomes are collected per test id by a
tiny plugin, so two runs compare test by test.

    python tests/interop/xdist_downstream.py ours      # prints a summary, writes JSON
    python tests/interop/xdist_downstream.py oracle
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from tools.oracle import VENVS, make_venv  # noqa: E402

XDIST_VERSION = "3.8.0"
# this checkout, in the names of what it keeps in the shared EXECNET_VENVS folder
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
PACKAGES = [
    "execnet-serial",
    "execnet-channel",
    "execnet-transport",
    "execnet-group",
    "execnet-rsync",
    "execnet",
]
# What the suite's extras ("testing") and our tests need besides pytest-xdist itself.
EXTRAS = ["filelock", "psutil", "pytest-timeout", "hypothesis", "hatchling"]

# The failures execnet 2.1.2 itself shows with the current pytest (they come from pytest).
KNOWN_FAILURES = {
    "testing/acceptance_test.py::TestGroupScope::test_by_module",
    "testing/acceptance_test.py::TestGroupScope::test_by_class",
    "testing/acceptance_test.py::TestGroupScope::test_module_single_start",
    "testing/acceptance_test.py::TestGroupScope::test_multiple_group_marks",
    "testing/acceptance_test.py::TestGroupScope::test_multiple_group_order",
    "testing/test_newhooks.py::TestCrashItem::test_handlecrashitem_one",
    "testing/test_remote.py::test_remote_usage_prog",
}

_PLUGIN = """
import json, os

_outcomes = {}

def pytest_runtest_logreport(report):
    if getattr(report, "wasxfail", None) is not None:
        outcome = "xpassed" if report.passed else "xfailed"
    elif report.when == "call" or report.failed or report.skipped:
        outcome = report.outcome
    else:
        return
    if _outcomes.get(report.nodeid) in ("failed", "error"):
        return
    if report.failed and report.when != "call":
        outcome = "error"
    _outcomes[report.nodeid] = outcome

def pytest_sessionfinish(session):
    path = os.environ.get("XDIST_OUTCOMES")
    if path and not hasattr(session.config, "workerinput"):
        with open(path, "w") as f:
            json.dump(_outcomes, f, indent=1, sort_keys=True)
"""


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        check=True,
    )


@lru_cache(maxsize=None)
def venv_for(kind: str) -> Path:
    """The interpreter of the environment for `kind` ('ours' or 'oracle').

    The environment is shared between runs (and test sessions running at the same time)
    and never changed once made; `ours` runs get the current sources on PYTHONPATH
    (see fresh_packages).
    """
    if kind == "oracle":
        return make_venv(
            f"xdist-{XDIST_VERSION}-oracle",
            [f"pytest-xdist=={XDIST_VERSION}", "execnet==2.1.2", *EXTRAS],
        )
    if kind != "ours":
        raise ValueError(f"kind must be 'ours' or 'oracle', not {kind!r}")
    # One resolver run with our packages and pytest-xdist: pip must accept our umbrella
    # for pytest-xdist's `execnet>=2.1` (else it fetches the original: checked below).
    # The requirements name this checkout's paths, so each checkout has its own
    # environment: a shared one would be rebuilt (`venv --clear`) under a run of another
    # checkout's suite whenever the two alternate.
    python = make_venv(
        f"xdist-{XDIST_VERSION}-ours-{CHECKOUT}",
        [
            *(str(ROOT / "packages" / name) for name in PACKAGES),
            f"pytest-xdist=={XDIST_VERSION}",
            *EXTRAS,
        ],
    )
    subprocess.run([str(python), "-m", "pip", "check"], check=True, capture_output=True)
    return python


def fresh_packages(target: Path) -> dict[str, str]:
    """Install the current sources of our six packages into `target`; the env to use.

    The sources change while we work, and other sessions may use the shared environment
    at the same time: each run gets a private copy, first on PYTHONPATH (so also in
    every popen worker, which inherits the environment).
    """
    python = venv_for("ours")
    locals_ = [str(ROOT / "packages" / name) for name in PACKAGES]
    _pip(python, "--no-deps", "--no-build-isolation", "--target", str(target), *locals_)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EXECNET_DEBUG"))}
    env["PYTHONPATH"] = str(target)
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import execnet, importlib.metadata as m;print(execnet.__file__, m.version('execnet'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    where, version = check.stdout.split()
    if not where.startswith(str(target)) or version != "2.2.0":
        raise RuntimeError(f"the run would not use our current execnet: {check.stdout}")
    return env


def xdist_sdist_tree() -> Path:
    """pytest-xdist's sdist, downloaded once and unpacked under .venvs/."""
    target = VENVS / f"pytest_xdist-{XDIST_VERSION}"
    if (target / "testing" / "conftest.py").exists():
        return target
    # The test environment may have no pip (hatch installs with uv): use our venv's.
    pip_python = str(venv_for("ours"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                pip_python,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"pytest-xdist=={XDIST_VERSION}",
                "-d",
                tmp,
            ],
            check=True,
        )
        (archive,) = Path(tmp).glob("pytest_xdist-*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(VENVS)
    return target


def run_suite(
    kind: str, extra_args: list[str] | None = None, targets: list[str] | None = None
) -> dict[str, str]:
    """Run pytest-xdist's suite against `kind` (or only `targets`, test ids); return
    {test id: outcome}."""
    python = venv_for(kind)
    tree = xdist_sdist_tree()
    with tempfile.TemporaryDirectory() as tmp:
        plugin_dir = Path(tmp) / "plugin"
        plugin_dir.mkdir()
        (plugin_dir / "xdist_outcomes.py").write_text(_PLUGIN)
        outcomes_file = Path(tmp) / "outcomes.json"
        if kind == "ours":
            env = fresh_packages(Path(tmp) / "packages")
        else:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PYTEST_", "EXECNET_DEBUG"))
            }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
        env["XDIST_OUTCOMES"] = str(outcomes_file)
        proc = subprocess.run(
            [
                str(python),
                "-m",
                "pytest",
                "-p",
                "xdist_outcomes",
                "-p",
                "no:cacheprovider",
                "-q",
                "--timeout=120",
                # private: other pytest sessions on this machine prune pytest-of-<user>
                f"--basetemp={Path(tmp) / 'basetemp'}",
                *(extra_args or []),
                *(targets or ["testing"]),
            ],
            cwd=tree,
            env=env,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        (VENVS / f"xdist-{kind}-{CHECKOUT}.log").write_text(proc.stdout)
        if not outcomes_file.exists():
            raise RuntimeError(f"pytest-xdist's suite did not finish:\n{proc.stdout[-5000:]}")
        outcomes: dict[str, str] = json.loads(outcomes_file.read_text())
    return outcomes


def summary(outcomes: dict[str, str]) -> str:
    counts = Counter(outcomes.values())
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "ours"
    result = run_suite(which, sys.argv[2:])
    (VENVS / f"xdist-{which}-{CHECKOUT}.json").write_text(
        json.dumps(result, indent=1, sort_keys=True)
    )
    print(summary(result))
    for test_id, outcome in sorted(result.items()):
        if outcome in ("failed", "error"):
            print(outcome.upper(), test_id)
