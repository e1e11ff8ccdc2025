"""The command lines that start a first stage (popen, ssh, vagrant_ssh)."""

from __future__ import annotations

import shlex
import sys

import pytest

from execnet_transport import XSpec
from execnet_transport._commands import (
    is_this_interpreter,
    popen_args,
    python_args,
    remote_command,
    ssh_args,
    vagrant_args,
)


def test_popen_this_interpreter() -> None:
    assert popen_args(XSpec("popen"), "STAGE") == [sys.executable, "-c", "STAGE"]
    assert is_this_interpreter(python_args(XSpec("popen")))
    assert is_this_interpreter([sys.executable])


def test_popen_python_is_split_like_a_shell() -> None:
    spec = XSpec("popen//python=env 'A B=1' pypy3")
    assert popen_args(spec, "S") == ["env", "A B=1", "pypy3", "-c", "S"]
    assert not is_this_interpreter(python_args(spec))
    assert not is_this_interpreter(["/nonexistent/python"])


def test_dont_write_bytecode_adds_dash_b() -> None:
    assert popen_args(XSpec("popen//dont_write_bytecode"), "S") == [sys.executable, "-B", "-c", "S"]


def test_ssh_splits_the_value_and_compresses() -> None:
    spec = XSpec("ssh=-p 5000 -o 'Opt=a b' myhost")
    args = ssh_args(spec, "print(1)")
    assert args[:6] == ["ssh", "-C", "-p", "5000", "-o", "Opt=a b"]
    assert args[6] == "myhost"
    assert shlex.split(args[7]) == ["python3", "-c", "print(1)"]


def test_ssh_config_python_and_bytecode() -> None:
    spec = XSpec("ssh=host//ssh_config=/etc/cfg//python=/opt/py3.8 -E//dont_write_bytecode")
    args = ssh_args(spec, "x = 'quoted'")
    assert args[:5] == ["ssh", "-C", "-F", "/etc/cfg", "host"]
    assert shlex.split(args[5]) == ["/opt/py3.8", "-E", "-B", "-c", "x = 'quoted'"]


def test_vagrant_ssh() -> None:
    args = vagrant_args(XSpec("vagrant_ssh=default//python=python3.11"), "S")
    assert args[:4] == ["vagrant", "ssh", "default", "--"]
    assert args[4] == remote_command(XSpec("popen//python=python3.11"), "S")


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: ssh_args(XSpec("ssh"), "S"), "ssh= needs a host"),
        (lambda: ssh_args(XSpec("ssh=  "), "S"), "ssh= needs a host"),
        (lambda: vagrant_args(XSpec("vagrant_ssh"), "S"), "needs a machine"),
        (lambda: python_args(XSpec("popen//python= ")), "empty python="),
    ],
)
def test_bad_values_name_the_spec(make, text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=text):
        make()
