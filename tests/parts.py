"""Where tests find the real parts they need: interpreters, pypy3, sshd, the oracle.

A test whose part is missing skips with the reason; under CI (CI=true) it fails
instead, because CI installs every part and a skip there would hide a broken setup.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Skip (locally) or fail (in CI) because a real part is missing."""
    if IN_CI:
        pytest.fail(f"missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _version_key(path: str) -> tuple[tuple[int, str], ...]:
    """Sorts .../versions/3.12.10/... after .../versions/3.12.9/... (numbers as numbers)."""
    parts = path.replace(os.sep, ".").replace("-", ".").split(".")
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in parts)


@lru_cache(maxsize=None)
def pyenv_interpreters() -> dict[str, str]:
    """{'3.8': path, ..., '3.13': path} for the pyenv interpreters on this machine (the
    newest patch release of each minor version)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found: dict[str, str] = {}
    for path in sorted(glob.glob(f"{root}/versions/*/bin/python3.*"), key=_version_key):
        name = os.path.basename(path)[len("python") :]
        if name.count(".") != 1 or not name.replace(".", "").isdigit():
            continue  # python3.11-config, python3.6m, ...
        major, minor = (int(x) for x in name.split("."))
        if (major, minor) >= (3, 8):
            found[name] = path
    return found


def interpreter(version: str) -> str:
    """The path of CPython `version` ('3.8' ... '3.13'), or skip/fail."""
    path = pyenv_interpreters().get(version)
    if path is None:
        missing(f"no CPython {version} under $(pyenv root)/versions")
    return path


def other_interpreter() -> str:
    """An interpreter that is not the one running the tests (prefers another CPython)."""
    me = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for version, path in sorted(pyenv_interpreters().items(), reverse=True):
        if version != me:
            return path
    missing("no second CPython under $(pyenv root)/versions")


@lru_cache(maxsize=None)
def _pypy3() -> str | None:
    return shutil.which("pypy3")


def pypy3() -> str:
    """Debian's pypy3, or skip/fail."""
    path = _pypy3()
    if path is None:
        missing("pypy3 is not installed (apt-get install pypy3)")
    return path


TRAVELLING_TARGETS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "pypy3"]


def target_interpreter(name: str) -> str:
    """An interpreter the travelling code must run on: a CPython version or 'pypy3'."""
    return pypy3() if name == "pypy3" else interpreter(name)


def python3_on_path() -> str:
    """The `python3` command a fresh machine has on PATH, or skip/fail."""
    path = shutil.which("python3")
    if path is None:
        missing("no python3 on PATH")
    return path


def openssl() -> str:
    """Debian's openssl command (it makes the throwaway certificates), or skip/fail."""
    path = shutil.which("openssl")
    if path is None:
        missing("the openssl command is not installed (apt-get install openssl)")
    return path


def oracle_python() -> str:
    """The interpreter of a virtual environment holding execnet 2.1.2 (see tools/oracle.py)."""
    sys.path.insert(0, str(ROOT))
    try:
        from tools.oracle import oracle_python as make
    finally:
        sys.path.remove(str(ROOT))
    try:
        return make()
    except subprocess.CalledProcessError as exc:
        missing(f"could not install execnet 2.1.2 from the package index: {exc}")
