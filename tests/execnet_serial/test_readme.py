"""The README's first example works when pasted, and its docstring examples run."""

from __future__ import annotations

import doctest
import re

import pytest
from parts import ROOT

import execnet_serial
from execnet_serial import _decoder, _encoder, _errors, _hook


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "packages" / "execnet-serial" / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", readme, re.S)
    assert match is not None
    example = match.group(1)
    assert len([line for line in example.splitlines() if line.strip()]) == 5
    exec(compile(example, "README.md", "exec"), {})
    assert capsys.readouterr().out == "{'answer': [42, 1.5, None], 'key': ('a', b'b', {1, 2})}\n"


@pytest.mark.parametrize("module", [execnet_serial, _decoder, _encoder, _errors, _hook])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted > 0
