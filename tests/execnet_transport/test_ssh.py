"""ssh and vagrant_ssh gateways against a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import parts
import pytest
from sshd import SshServer

from execnet_transport import BootstrapError, Gateway, HostNotFound, SshError

MakeGateway = Callable[..., Gateway]


def _python() -> str:
    # The remote python: a real interpreter path (sshd's PATH may not hold pyenv's).
    return sys.executable


def test_raw_args(sshd: SshServer, makegw: MakeGateway) -> None:
    gw = makegw(f"ssh={sshd.raw_args}//python={_python()}")
    assert gw.remoteaddress == sshd.raw_args
    info = gw._rinfo()
    assert info.pid != os.getpid()
    assert gw.child_pid is not None  # the local ssh client
    ch = gw.remote_exec("import execnet_channel; channel.send(execnet_channel.__spec__.origin)")
    assert ch.receive(10).startswith("<execnet bundle>/")


def test_ssh_config_alias(sshd: SshServer, makegw: MakeGateway) -> None:
    gw = makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={_python()}")
    assert gw.remote_exec("channel.send(6 * 7)").receive(10) == 42


def test_port_option_and_config(sshd: SshServer, makegw: MakeGateway) -> None:
    gw = makegw(f"ssh=-p {sshd.port} 127.0.0.1//ssh_config={sshd.ssh_config}//python={_python()}")
    assert gw.remote_exec("channel.send(1)").receive(10) == 1


def test_other_interpreter(sshd: SshServer, makegw: MakeGateway) -> None:
    other = parts.other_interpreter()
    gw = makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={other}")
    assert os.path.realpath(gw._rinfo().executable) == os.path.realpath(other)


def test_options_over_ssh(sshd: SshServer, makegw: MakeGateway, tmp_path: Path) -> None:
    target = tmp_path / "over" / "ssh"
    gw = makegw(
        f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={_python()}"
        f"//chdir={target}//env:EXECNET_SSH=yes//execmodel=main_thread_only//dont_write_bytecode"
    )
    ch = gw.remote_exec(
        "import os, sys\n"
        "channel.send((os.getcwd(), os.environ['EXECNET_SSH'], sys.dont_write_bytecode,"
        " channel.gateway.execmodel.backend))"
    )
    assert ch.receive(10) == (str(target), "yes", True, "main_thread_only")


def test_host_not_found(sshd: SshServer, makegw: MakeGateway) -> None:
    with pytest.raises(HostNotFound) as info:
        makegw(f"ssh=no-such-host.invalid//ssh_config={sshd.ssh_config}")
    assert "no-such-host.invalid" in str(info.value)
    assert info.value.returncode == 255
    assert "resolve" in info.value.stderr.lower()


def test_connection_refused_is_host_not_found(sshd: SshServer, makegw: MakeGateway) -> None:
    from sshd import _free_port

    with pytest.raises(HostNotFound, match="refused"):
        makegw(f"ssh=-p {_free_port()} 127.0.0.1//ssh_config={sshd.ssh_config}")


def test_permission_denied(sshd: SshServer, makegw: MakeGateway, tmp_path: Path) -> None:
    import subprocess

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    args = sshd.raw_args.replace(str(sshd.identity), str(stranger))
    with pytest.raises(SshError) as info:
        makegw(f"ssh=-o IdentitiesOnly=yes {args}")
    assert not isinstance(info.value, HostNotFound)
    assert isinstance(info.value, BootstrapError)
    assert "Permission denied" in info.value.stderr
    assert "Permission denied" in str(info.value)


def test_missing_remote_python(sshd: SshServer, makegw: MakeGateway) -> None:
    with pytest.raises(SshError) as info:
        makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python=/no/such/python3")
    assert not isinstance(info.value, HostNotFound)
    assert info.value.returncode == 127
    assert "/no/such/python3" in info.value.stderr


def test_via_an_ssh_gateway(sshd: SshServer, makegw: MakeGateway) -> None:
    hop = makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={_python()}")
    gw = makegw("popen//env:EXECNET_VIA=1", via=hop)
    assert gw.via_gateway is hop
    assert gw.child_pid is None
    ch = gw.remote_exec("import os; channel.send((os.getppid(), os.environ['EXECNET_VIA']))")
    parent, flag = ch.receive(10)
    assert parent == hop._rinfo().pid  # started by the ssh gateway's interpreter
    assert flag == "1"


def test_vagrant_stand_in(
    sshd: SshServer, makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{sshd.vagrant_path}{os.pathsep}{os.environ['PATH']}")
    gw = makegw(f"vagrant_ssh={sshd.alias}//python={_python()}")
    assert gw.remoteaddress == sshd.alias
    assert gw.remote_exec("import sys; channel.send(sys.platform)").receive(10) == sys.platform


def test_vagrant_unknown_machine(
    sshd: SshServer, makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{sshd.vagrant_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(HostNotFound, match=r"vagrant_ssh=no-such-machine\.invalid"):
        makegw("vagrant_ssh=no-such-machine.invalid")


def test_execnet_debug_reaches_the_ssh_remote(
    sshd: SshServer,
    makegw: MakeGateway,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EXECNET_DEBUG", "2")  # sshd gives the remote a fresh environment
    gw = makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={_python()}//id=traced")
    ch = gw.remote_exec("import os; channel.send(os.environ.get('EXECNET_DEBUG'))")
    assert ch.receive(10) == "2"
    gw.exit()
    gw.join(10)
    gw.wait_child(10)
    assert gw._child is not None
    gw._child.stderr_tail(wait=5)  # the tee has copied everything
    assert "gateway traced" in capfd.readouterr().err  # the remote's trace, via its stderr
