"""The README's first example works when pasted (docstring examples: tests/test_doctests.py)."""

from __future__ import annotations

import re

import pytest
from parts import ROOT


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "packages" / "execnet-serial" / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", readme, re.S)
    assert match is not None
    example = match.group(1)
    assert len([line for line in example.splitlines() if line.strip()]) == 5
    exec(compile(example, "README.md", "exec"), {})
    assert capsys.readouterr().out == "{'answer': [42, 1.5, None], 'key': ('a', b'b', {1, 2})}\n"
