"""ssh the way people configure it (issue 15): the ssh_* keys, errors that tell causes
apart, shared connections, jump hosts; against the real OpenSSH server of tests/sshd.py."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from sshd import SshServer

from execnet_transport import (
    BootstrapError,
    Gateway,
    HostKeyMismatch,
    HostNotFound,
    RemotePythonMissing,
    SshAuthenticationError,
    SshError,
    SshTimeout,
)
from execnet_transport._ssh import shares

MakeGateway = Callable[..., Gateway]
CONNECTION = "import os; channel.send(os.environ['SSH_CONNECTION'])"
# No config file: ssh= names the host, the keys say the rest (no known_hosts is kept).
NO_KNOWN_HOSTS = "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def _by_keys(sshd: SshServer, extra: str = "") -> str:
    return (
        f"ssh={NO_KNOWN_HOSTS} 127.0.0.1//ssh_port={sshd.port}//ssh_identity={sshd.identity}"
        f"//ssh_strict=no//python={sys.executable}{extra}"
    )


def _ended(gw: Gateway) -> None:
    gw.exit()
    gw.join(10)
    gw.wait_child(10)


def test_port_identity_and_strict_keys(sshd: SshServer, makegw: MakeGateway) -> None:
    gw = makegw(_by_keys(sshd))
    assert gw.remote_exec("channel.send(6 * 7)").receive(10) == 42
    assert gw.remoteaddress == f"{NO_KNOWN_HOSTS} 127.0.0.1"


def test_accept_new_records_the_host_key(
    sshd: SshServer, makegw: MakeGateway, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    spec = (
        f"ssh=-o UserKnownHostsFile={known} 127.0.0.1//ssh_port={sshd.port}"
        f"//ssh_identity={sshd.identity}//ssh_strict=accept-new//python={sys.executable}"
    )
    makegw(spec + "//ssh_share=no")
    host_key = (sshd.directory / "ssh_host_ed25519_key.pub").read_text().split()[1]
    assert host_key in known.read_text()
    makegw(spec.replace("accept-new", "yes") + "//ssh_share=no")  # now known: accepted


def test_host_key_mismatch(sshd: SshServer, makegw: MakeGateway, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {Path(f'{other}.pub').read_text()}")
    with pytest.raises(HostKeyMismatch) as info:
        makegw(
            f"ssh=-o UserKnownHostsFile={known} 127.0.0.1//ssh_port={sshd.port}"
            f"//ssh_identity={sshd.identity}//ssh_strict=yes"
        )
    assert isinstance(info.value, SshError)
    assert "Host key verification failed." in str(info.value)  # ssh's own line, quoted


def test_authentication_refused_in_batch_mode(
    sshd: SshServer, makegw: MakeGateway, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    # A password is allowed by nobody here; batch mode fails at once, with ssh's line.
    with pytest.raises(SshAuthenticationError) as info:
        makegw(
            f"ssh={NO_KNOWN_HOSTS} 127.0.0.1//ssh_port={sshd.port}//ssh_identity={stranger}"
            "//ssh_strict=no"
        )
    assert not isinstance(info.value, HostNotFound)
    assert "Permission denied" in info.value.reason
    assert "never asks for a password" in info.value.reason


def test_timeout_is_its_own_error(makegw: MakeGateway) -> None:
    # A port that accepts connections (the kernel's backlog) and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(SshTimeout) as info:
            makegw(f"ssh=127.0.0.1//ssh_port={port}//ssh_timeout=1//ssh_share=no")
    assert isinstance(info.value, HostNotFound)  # what execnet 2.1.2 users catch
    assert "timed out" in info.value.reason
    assert info.value.returncode == 255


def test_host_not_found_quotes_ssh(sshd: SshServer, makegw: MakeGateway) -> None:
    with pytest.raises(HostNotFound) as info:
        makegw(f"ssh=no-such-host.invalid//ssh_config={sshd.ssh_config}")
    assert type(info.value) is HostNotFound
    assert "no-such-host.invalid" in info.value.reason  # ssh's line names the host


def test_remote_python_missing(sshd: SshServer, makegw: MakeGateway) -> None:
    with pytest.raises(RemotePythonMissing) as info:
        makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python=/no/such/python3")
    assert isinstance(info.value, BootstrapError)
    assert info.value.returncode == 127
    assert "/no/such/python3" in info.value.reason


def test_jump_host_and_a_chain_of_two(sshd: SshServer, makegw: MakeGateway) -> None:
    # The same sshd, reached under other names (ssh refuses a jump to the very name it
    # goes to): through localhost, then through localhost and the config alias.
    spec = (
        f"ssh=127.0.0.1//ssh_port={sshd.port}//ssh_config={sshd.ssh_config}"
        f"//ssh_jump=localhost:{sshd.port}//python={sys.executable}//ssh_share=no"
    )
    gw = makegw(spec)
    # The target's session came from the jump host's sshd, not from our ssh's socket.
    assert gw.remote_exec("channel.send(1)").receive(10) == 1
    chained = makegw(spec.replace("ssh_jump=localhost", f"ssh_jump={sshd.alias}-a,localhost"))
    assert chained.remote_exec("channel.send(2)").receive(10) == 2
    assert gw._child is not None
    assert "-J" in gw._child.args


def test_gateways_to_one_host_share_a_connection(sshd: SshServer, makegw: MakeGateway) -> None:
    spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}"
    first, second, third = makegw(spec), makegw(spec), makegw(spec)
    seen = {gw.remote_exec(CONNECTION).receive(10) for gw in (first, second, third)}
    assert len(seen) == 1  # one TCP connection: the same client port for all three
    # The first gateway's own ssh became the master; the others are sessions over it.
    assert first._child is not None
    assert "ControlMaster=yes" in first._child.args
    assert second._child is not None
    assert "ControlMaster=no" in second._child.args
    directory = shares.directory
    assert directory is not None
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert os.stat(directory).st_uid == os.getuid()
    assert len(os.listdir(directory)) == 1  # one control socket
    alone = makegw(spec + "//ssh_share=no")
    assert alone.remote_exec(CONNECTION).receive(10) not in seen
    for gw in (first, second):
        _ended(gw)
    assert os.path.isdir(directory)  # the third still uses it, after the first's end:
    assert len(os.listdir(directory)) == 1  # the master went on in the background
    assert third.remote_exec("channel.send(3)").receive(10) == 3
    _ended(third)
    assert not os.path.exists(directory)  # the last gateway's end removed it
    assert shares.directory is None


def test_a_group_made_side_by_side_shares_one_connection(sshd: SshServer) -> None:
    from execnet_group import Group

    spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}"
    group = Group([spec] * 4)  # made in parallel: they wait for one master
    try:
        seen = group.remote_exec(CONNECTION).receive_each()
        assert len(set(seen)) == 1
    finally:
        group.terminate(10)


def test_share_off_makes_no_directory(sshd: SshServer, makegw: MakeGateway) -> None:
    spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}"
    before = shares.directory
    a, b = makegw(spec + "//ssh_share=no"), makegw(spec + "//ssh_share=no")
    assert shares.directory == before
    assert a.remote_exec(CONNECTION).receive(10) != b.remote_exec(CONNECTION).receive(10)


def test_failed_start_releases_its_share(sshd: SshServer, makegw: MakeGateway) -> None:
    before = shares.directory
    with pytest.raises(RemotePythonMissing):
        makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python=/no/such/python3")
    assert shares.directory == before


def test_the_code_cache_outlives_a_share(sshd: SshServer, makegw: MakeGateway) -> None:
    from execnet_transport import _bootstrap
    from execnet_transport._ssh import ssh_args

    spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//python={sys.executable}//id=cc"
    _ended(makegw(spec))  # its share (and control path) is gone with it
    assert gw_code(_bootstrap, ssh_args, spec) is not None  # kept under the path-less key


def gw_code(bootstrap: object, ssh_args: Callable[..., list[str]], spec: str) -> object:
    from execnet_transport import XSpec
    from execnet_transport._transports import shell_command

    xspec = XSpec(spec)
    command = shell_command(xspec, bootstrap.first_stage("stdio"))  # type: ignore[attr-defined]
    return bootstrap._compiled.get(tuple(ssh_args(xspec, command)))  # type: ignore[attr-defined]


def _failures_side_by_side(makegw: MakeGateway, spec: str, count: int = 3) -> list[Exception]:
    """Make `count` gateways for `spec` at once (threads); what each raised."""
    import threading

    errors: list[Exception] = []

    def make() -> None:
        try:
            makegw(spec)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_side_by_side_gateways_to_a_host_refusing_the_key(
    sshd: SshServer, makegw: MakeGateway, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    spec = (
        f"ssh={NO_KNOWN_HOSTS} 127.0.0.1//ssh_port={sshd.port}//ssh_identity={stranger}"
        "//ssh_strict=no"
    )
    before = shares.directory
    # The first one's ssh is to be the master; when it fails the others go on with
    # connections of their own: each fails with its own ssh's words, none waits for a
    # socket that never comes.
    errors = _failures_side_by_side(makegw, spec)
    assert len(errors) == 3
    assert all(isinstance(error, SshAuthenticationError) for error in errors), errors
    assert all("Permission denied" in str(error) for error in errors)
    assert shares.directory == before


def test_side_by_side_gateways_to_a_silent_host_each_time_out(makegw: MakeGateway) -> None:
    with socket.socket() as silent:  # accepts (the kernel's backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        spec = f"ssh=127.0.0.1//ssh_port={silent.getsockname()[1]}//ssh_timeout=2"
        errors = _failures_side_by_side(makegw, spec)
    assert len(errors) == 3
    assert all(isinstance(error, SshTimeout) for error in errors), errors
