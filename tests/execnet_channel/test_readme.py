"""The package README's first example works when pasted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "packages" / "execnet-channel" / "README.md"
SRC_DIRS = [
    str(README.parent.parent / name / "src") for name in ("execnet-serial", "execnet-channel")
]


def test_first_example() -> None:
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert match is not None
    result = subprocess.run(  # noqa: PLW1510 - the output is asserted
        [sys.executable, "-c", match.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(SRC_DIRS)),
    )
    assert result.stdout.strip() == "42", result.stderr
