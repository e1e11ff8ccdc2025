"""The original execnet, installed in a virtual environment of its own, as an oracle.

Interop tests and benchmarks compare this project with execnet 2.1.2 from the package
index. The original is never importable next to our packages: it lives in its own
virtual environment, created on first use (under a file lock, so parallel test
processes share one) and reused afterwards.

    python tools/oracle.py            # create if needed, print the interpreter's path
    from tools.oracle import oracle_python
    subprocess.run([oracle_python(), "-c", "import execnet; print(execnet.__version__)"])
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import venv
from pathlib import Path

ORACLE_VERSION = "2.1.2"
ROOT = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("EXECNET_VENVS", ROOT / ".venvs"))


def _venv_python(path: Path) -> Path:
    return path / "bin" / "python"


def make_venv(name: str, requirements: list[str], base_python: str | None = None) -> Path:
    """Create (or reuse) the virtual environment `name` holding `requirements`.

    Returns the path of its interpreter. A marker file records what was installed, so a
    changed requirement list rebuilds the environment.
    """
    VENVS.mkdir(parents=True, exist_ok=True)
    path = VENVS / name
    marker = path / ".requirements"
    wanted = "\n".join(requirements)
    with open(VENVS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == wanted:
            return _venv_python(path)
        if base_python is None:
            venv.EnvBuilder(clear=True, with_pip=True).create(path)
        else:
            subprocess.run([base_python, "-m", "venv", "--clear", str(path)], check=True)
        subprocess.run(
            [
                str(_venv_python(path)),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *requirements,
            ],
            check=True,
        )
        marker.write_text(wanted)
    return _venv_python(path)


def oracle_python() -> str:
    """The interpreter of a virtual environment holding only execnet 2.1.2."""
    return str(make_venv(f"oracle-execnet-{ORACLE_VERSION}", [f"execnet=={ORACLE_VERSION}"]))


if __name__ == "__main__":
    print(oracle_python())
    sys.exit(0)
