"""Each local package's README starts with an example that works when pasted.

(The travelling packages' READMEs have their own: tests/execnet_serial/test_readme.py,
tests/execnet_channel/test_readme.py.) Each runs in a fresh interpreter, as pasted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from parts import ROOT

# package folder -> what its first example prints (a regular expression, whole output)
EXPECTED = {
    "execnet-transport": r"hello <Gateway id='gw0' receive-live, thread model, \d+ active "
    r"channels>\n",
    "execnet-group": r"\[\d+, \d+\]\nterminated: exited \['gw0', 'gw1'\]\n",
    "execnet-rsync": r"",
    "execnet": r"",
}


def first_example(package: str) -> str:
    readme = (ROOT / "packages" / package / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert match is not None, f"{package}/README.md has no python example"
    return match.group(1)


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_first_example_runs_as_pasted(package: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", first_example(package)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert re.fullmatch(EXPECTED[package], result.stdout), result.stdout
