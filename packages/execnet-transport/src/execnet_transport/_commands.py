"""The command lines that start a first stage: popen, ssh and vagrant_ssh."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import List

from ._xspec import XSpec

__all__ = ["is_this_interpreter", "popen_args", "remote_command", "ssh_args", "vagrant_args"]

DEFAULT_REMOTE_PYTHON = "python3"


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
    """`<python> [-B] -c <first stage>` for a local child."""
    args = python_args(spec)
    if spec.dont_write_bytecode:
        args.append("-B")
    return [*args, "-c", stage]


def remote_command(spec: XSpec, stage: str) -> str:
    """The command an ssh server's shell runs: python= as written, then -c and the stage."""
    python = spec.python if spec.python and spec.python is not True else DEFAULT_REMOTE_PYTHON
    flags = " -B" if spec.dont_write_bytecode else ""
    return f"{python}{flags} -c {shlex.quote(stage)}"


def ssh_args(spec: XSpec, stage: str) -> List[str]:
    """`ssh -C [-F cfg] <ssh= split like a shell> <remote command>`."""
    destination = shlex.split(str(spec.ssh)) if spec.ssh is not True else []
    if not destination:
        raise ValueError(f"ssh= needs a host in gateway spec {str(spec)!r}")
    args = ["ssh", "-C"]
    if spec.ssh_config:
        args += ["-F", str(spec.ssh_config)]
    return [*args, *destination, remote_command(spec, stage)]


def vagrant_args(spec: XSpec, stage: str) -> List[str]:
    """`vagrant ssh MACHINE -- <remote command>`."""
    if spec.vagrant_ssh is True or not spec.vagrant_ssh:
        raise ValueError(f"vagrant_ssh= needs a machine name in gateway spec {str(spec)!r}")
    return ["vagrant", "ssh", str(spec.vagrant_ssh), "--", remote_command(spec, stage)]
