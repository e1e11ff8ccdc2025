"""The command lines that start a first stage: popen and vagrant_ssh (ssh: _ssh.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import List

from ._transports import python_command, shell_command, sudo_args
from ._xspec import XSpec

__all__ = ["is_this_interpreter", "popen_args", "python_args", "remote_command", "vagrant_args"]


def python_args(spec: XSpec) -> List[str]:
    """The local interpreter command of a popen spec: python= split like a shell would."""
    if not spec.python or spec.python is True:
        return [sys.executable]
    args = shlex.split(spec.python)
    if not args:
        raise ValueError(f"empty python= in gateway spec {str(spec)!r}")
    return args


def is_this_interpreter(args: List[str]) -> bool:
    """True when `args` starts the interpreter running this code (it can import our packages)."""
    if len(args) != 1:
        return False
    found = shutil.which(args[0])
    return found is not None and os.path.abspath(found) == os.path.abspath(sys.executable)


def popen_args(spec: XSpec, stage: str) -> List[str]:
    """`[sudo -n -u USER --] <python> [-B] -c <first stage>` for a local child."""
    return [*sudo_args(spec), *python_command(spec, stage, sys.executable)]


def remote_command(spec: XSpec, stage: str) -> str:
    """The command a remote shell runs: [sudo -n -u USER --] python= as written, -c stage."""
    return shell_command(spec, stage)


def vagrant_args(spec: XSpec, stage: str) -> List[str]:
    """`vagrant ssh MACHINE -- <remote command>`."""
    if spec.vagrant_ssh is True or not spec.vagrant_ssh:
        raise ValueError(f"vagrant_ssh= needs a machine name in gateway spec {str(spec)!r}")
    return ["vagrant", "ssh", str(spec.vagrant_ssh), "--", remote_command(spec, stage)]
