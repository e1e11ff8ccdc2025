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
    vagrant_args,
)
from execnet_transport._ssh import ssh_args

# What every ssh command line holds after `ssh -C [-F cfg]`: batch mode, the timeout.
OURS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]


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
    args = ssh_args(spec, remote_command(spec, "print(1)"))
    assert args[:10] == ["ssh", "-C", *OURS, "-p", "5000", "-o", "Opt=a b"]
    assert args[10] == "myhost"
    assert shlex.split(args[11]) == ["python3", "-c", "print(1)"]


def test_ssh_config_python_and_bytecode() -> None:
    spec = XSpec("ssh=host//ssh_config=/etc/cfg//python=/opt/py3.8 -E//dont_write_bytecode")
    args = ssh_args(spec, remote_command(spec, "x = 'quoted'"))
    assert args[:9] == ["ssh", "-C", "-F", "/etc/cfg", *OURS, "host"]
    assert shlex.split(args[9]) == ["/opt/py3.8", "-E", "-B", "-c", "x = 'quoted'"]


def test_vagrant_ssh() -> None:
    args = vagrant_args(XSpec("vagrant_ssh=default//python=python3.11"), "S")
    assert args[:4] == ["vagrant", "ssh", "default", "--"]
    assert args[4] == remote_command(XSpec("popen//python=python3.11"), "S")


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: ssh_args(XSpec("ssh"), "S"), "ssh= needs a host"),
        (lambda: ssh_args(XSpec("ssh=  "), "S"), "ssh= needs a host"),
        (lambda: popen_args(XSpec("popen//sudo"), "S"), "needs a user: sudo=USER"),
        (lambda: vagrant_args(XSpec("vagrant_ssh"), "S"), "needs a machine"),
        (lambda: python_args(XSpec("popen//python= ")), "empty python="),
    ],
)
def test_bad_values_name_the_spec(make, text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=text):
        make()


def test_ssh_keys_become_options() -> None:
    spec = XSpec(
        "ssh=me@host//ssh_port=2222//ssh_identity=/k/id//ssh_jump=j1,u@j2:2200"
        "//ssh_timeout=5//ssh_strict=accept-new"
    )
    args = ssh_args(spec, "CMD")
    assert args == [
        "ssh", "-C", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", "2222",
        "-i", "/k/id", "-o", "IdentitiesOnly=yes", "-J", "j1,u@j2:2200",
        "-o", "StrictHostKeyChecking=accept-new", "me@host", "CMD",
    ]  # fmt: skip


def test_ssh_shared_connection_options() -> None:
    args = ssh_args(XSpec("ssh=host"), "CMD", "/tmp/d/abc")
    assert args[-6:-2] == ["-o", "ControlMaster=no", "-o", "ControlPath=/tmp/d/abc"]


def test_sudo_before_the_interpreter() -> None:
    assert popen_args(XSpec("popen//sudo=nobody"), "S") == [
        "sudo", "-n", "-u", "nobody", "--", sys.executable, "-c", "S",
    ]  # fmt: skip
    command = remote_command(XSpec("ssh=h//sudo=web user//python=python3.12"), "S")
    assert shlex.split(command) == ["sudo", "-n", "-u", "web user", "--", "python3.12", "-c", "S"]


def test_container_command_lines() -> None:
    from execnet_transport._containers import container_args, kubectl_args

    spec = XSpec("docker=web//container_user=app//container_workdir=/srv//python=python3.12")
    assert container_args(spec, "docker", "S") == [
        "docker", "exec", "-i", "-u", "app", "-w", "/srv", "web", "python3.12", "-c", "S",
    ]  # fmt: skip
    assert container_args(XSpec("podman=db//dont_write_bytecode"), "podman", "S") == [
        "podman", "exec", "-i", "db", "python3", "-B", "-c", "S",
    ]  # fmt: skip
    spec = XSpec("kubectl=pod-1//kubectl_namespace=ci//kubectl_container=py//kubectl_context=kind")
    assert kubectl_args(spec, "S") == [
        "kubectl", "exec", "-i", "--context", "kind", "-n", "ci", "pod-1", "-c", "py",
        "--", "python3", "-c", "S",
    ]  # fmt: skip
    assert kubectl_args(XSpec("kubectl=p"), "S") == [
        "kubectl", "exec", "-i", "p", "--", "python3", "-c", "S",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("ssh=h//ssh_port=0", "port '0' is not a number 1-65535"),
        ("ssh=h//ssh_port=ab", "port 'ab'"),
        ("ssh=h//ssh_timeout=0", "expected whole seconds"),
        ("ssh=h//ssh_timeout=1.5", "expected whole seconds"),
        ("ssh=h//ssh_strict=maybe", "expected one of yes, no, accept-new"),
        ("ssh=h//ssh_share=perhaps", "expected yes or no"),
        ("ssh=h//ssh_jump=a b", "is not \\[user@\\]host\\[:port\\]"),
        ("ssh=h//ssh_jump=j:99999", "port '99999'"),
        ("ssh=h//ssh_jump=-oProxyCommand=x", "is not"),
        ("ssh=h//ssh_identity", "needs a value"),
        ("docker", "needs a value"),
        ("docker=-it", "not an option"),
        ("kubectl=p//kubectl_namespace", "needs a value"),
    ],
)
def test_bad_transport_keys(spec: str, text: str) -> None:
    from execnet_transport import make_gateway

    with pytest.raises(ValueError, match=text):
        make_gateway(XSpec(spec + "//id=x"))


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("popen//ssh_port=22", "ssh_port= .* only works with ssh"),
        ("popen//tls", "tls= .* only works with socket"),
        ("ssh=h//container_user=a", "only works with docker or podman"),
        ("docker=c//sudo=x", "only works with popen or ssh or vagrant_ssh"),
        ("popen//no_such_key=1", "unknown key 'no_such_key'.*known here are: .*ssh_jump"),
        ("no_such_transport=1", "no gateway type.*transports known here: popen, ssh"),
        ("popen//docker=c", "several gateway types \\(popen, docker\\)"),
    ],
)
def test_keys_of_other_transports_and_unknown_keys(spec: str, text: str) -> None:
    from execnet_transport import make_gateway

    with pytest.raises(ValueError, match=text):
        make_gateway(XSpec(spec + "//id=x"))
