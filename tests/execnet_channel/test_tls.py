"""TLSConnection and TLSSocketIO on every interpreter the travelling code runs on.

A TLS server's fork hands its TLSConnection to the code a client sends, so both run
wherever a server or a remote runs: CPython 3.8-3.13 and PyPy3 (whose SSLObject.read
into a memoryview slice writes to the wrong place; 3.13 no longer ignores a TCP end
without close_notify by default).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import parts
import pytest
from socketservers import PKI

HERE = Path(__file__).resolve().parent
SRC_DIRS = [
    str(HERE.parent.parent / "packages" / name / "src")
    for name in ("execnet-serial", "execnet-channel")
]


@pytest.mark.parametrize("target", parts.TRAVELLING_TARGETS)
def test_tls_both_ends_inside_the_target(target: str, pki: PKI) -> None:
    python = parts.target_interpreter(target)
    result = subprocess.run(  # noqa: PLW1510 - the output is asserted
        [
            python,
            str(HERE / "tls_exchange.py"),
            str(pki.ca),
            str(pki.server_cert),
            str(pki.server_key),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(SRC_DIRS)),
    )
    assert result.stdout.strip() == "ok", result.stderr
