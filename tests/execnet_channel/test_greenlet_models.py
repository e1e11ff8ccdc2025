"""Every contract test under gevent and eventlet, each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@pytest.mark.parametrize("model", ["gevent", "eventlet"])
def test_contract_under_greenlet_model(model: str) -> None:
    pytest.importorskip(model)
    env = dict(os.environ, EXECNET_TEST_GREENLET_MODEL=model)
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "pytest", "-q", "-x", str(HERE / "greenlet_contract.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout
    assert " passed" in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout
