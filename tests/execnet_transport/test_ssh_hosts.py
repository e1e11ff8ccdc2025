"""ssh to several real hosts (issue 15): a jump host, a chain of two jumps, shared
connections per host, errors through a jump; against tests/sshd.py's `sshd_hosts` (a on
127.0.0.2 reachable here; b on 127.0.0.3 only through a; c on 127.0.0.4 only through b)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Tuple

import pytest
from sshd import SshHosts

from execnet_transport import Gateway, HostKeyMismatch, HostNotFound, SshAuthenticationError
from execnet_transport._ssh import shares

MakeGateway = Callable[..., Gateway]
# Which host the session landed on (sshd's SetEnv) and its SSH_CONNECTION (client
# address and port, server address and port).
WHERE = "import os; channel.send((os.environ['EXECNET_HOST'], os.environ['SSH_CONNECTION']))"


def _spec(hosts: SshHosts, host: str, extra: str = "") -> str:
    return f"ssh={host}//ssh_config={hosts.ssh_config}//python={sys.executable}{extra}"


def _where(gw: Gateway) -> Tuple[str, str]:
    landed, connection = gw.remote_exec(WHERE).receive(30)
    return landed, connection


def _control_path(gw: Gateway) -> str:
    assert gw._child is not None
    return next(a.split("=", 1)[1] for a in gw._child.args if a.startswith("ControlPath="))


def _connections(hosts: SshHosts, name: str) -> int:
    """How many ssh connections host `name` accepted so far (its sshd's log)."""
    log = hosts[name].log
    return log.read_text().count("Connection from ") if log.exists() else 0


def test_the_jump_host_is_the_only_one_reached_directly(
    sshd_hosts: SshHosts, makegw: MakeGateway
) -> None:
    assert _where(makegw(_spec(sshd_hosts, "a")))[0] == "a"
    for inner in ("b", "c"):
        with pytest.raises(HostNotFound) as info:
            makegw(_spec(sshd_hosts, inner, "//ssh_timeout=10"))
        assert "Connection refused" in info.value.reason  # ssh's line, quoted
        assert sshd_hosts[inner].address in info.value.reason


def test_through_a_jump_host(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    b = sshd_hosts["b"]
    gw = makegw(_spec(sshd_hosts, "b", "//ssh_jump=a"))
    landed, connection = _where(gw)
    assert landed == "b"
    client, _, server, port = connection.split()
    # b saw the connection the jump host opened in b's network, from loopback's own
    # source address there (and the known_hosts check proved b's host key).
    assert (client, server, int(port)) == ("127.0.0.1", b.address, b.port)
    assert gw._child is not None
    assert "-J" in gw._child.args


def test_jump_written_as_user_at_address_and_port(
    sshd_hosts: SshHosts, makegw: MakeGateway
) -> None:
    a = sshd_hosts["a"]
    gw = makegw(_spec(sshd_hosts, "b", f"//ssh_jump=root@{a.address}:{a.port}//ssh_share=no"))
    assert _where(gw)[0] == "b"


def test_a_chain_of_two_jumps(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    c = sshd_hosts["c"]
    landed, connection = _where(makegw(_spec(sshd_hosts, "c", "//ssh_jump=a,b")))
    assert landed == "c"
    assert connection.split()[2:] == [c.address, str(c.port)]
    # c is in b's inner network: a alone cannot reach it.
    with pytest.raises(HostNotFound) as info:
        makegw(_spec(sshd_hosts, "c", "//ssh_jump=a//ssh_timeout=10"))
    assert "closed" in info.value.reason.lower() or "refused" in info.value.reason.lower()


def test_two_hosts_two_shared_connections(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    before = set(os.listdir(shares.directory)) if shares.directory else set()
    on_a = [makegw(_spec(sshd_hosts, "a")) for _ in range(2)]
    on_b = [makegw(_spec(sshd_hosts, "b", "//ssh_jump=a")) for _ in range(2)]
    assert {_where(gw) for gw in on_a} == {_where(on_a[0])}  # one connection to a
    assert {_where(gw) for gw in on_b} == {_where(on_b[0])}  # one connection to b
    assert _where(on_a[0])[0] == "a"
    assert _where(on_b[0])[0] == "b"
    assert shares.directory is not None
    assert len(set(os.listdir(shares.directory)) - before) == 2  # a control socket each


def test_eight_gateways_through_the_jump_share_one_connection(sshd_hosts: SshHosts) -> None:
    from execnet_group import Group

    spec = _spec(sshd_hosts, "b", "//ssh_jump=a")
    through_a, to_b = _connections(sshd_hosts, "a"), _connections(sshd_hosts, "b")
    group = Group([spec] * 8)  # made side by side: they wait for one master
    try:
        seen = group.remote_exec(WHERE).receive_each()
        assert len(set(seen)) == 1
        assert seen[0][0] == "b"
        pids = group.remote_exec("import os; channel.send(os.getpid())").receive_each()
        assert len(set(pids)) == 8  # eight interpreters on b, over one connection
    finally:
        group.terminate(30)
    # One connection reached the jump host and one b, for all eight.
    assert _connections(sshd_hosts, "a") == through_a + 1
    assert _connections(sshd_hosts, "b") == to_b + 1


def test_inner_host_refusing_the_key(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    # The jump host takes its own key (the config's); b, named by its address (which the
    # config gives no key), is offered c's key only.
    b, c = sshd_hosts["b"], sshd_hosts["c"]
    with pytest.raises(SshAuthenticationError) as info:
        makegw(
            _spec(
                sshd_hosts, b.address, f"//ssh_port={b.port}//ssh_jump=a//ssh_identity={c.identity}"
            )
        )
    assert "Permission denied" in info.value.reason
    assert "ssh_jump=a" in str(info.value)
    spec = _spec(
        sshd_hosts, b.address, f"//ssh_port={b.port}//ssh_jump=a//ssh_identity={b.identity}"
    )
    assert _where(makegw(spec))[0] == "b"  # its own key: let in


def test_unknown_inner_host(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    with pytest.raises(HostNotFound) as info:
        makegw(_spec(sshd_hosts, "no-such-host.invalid", "//ssh_jump=a//ssh_timeout=10"))
    assert type(info.value) is HostNotFound
    # The first gateway's ssh was to be the shared master: ssh sent the jump host's
    # words to /dev/null, and the error says so.
    assert "ssh_share=no shows them" in info.value.reason
    spec = _spec(sshd_hosts, "no-such-host.invalid", "//ssh_jump=a//ssh_share=no")
    with pytest.raises(HostNotFound) as unshared:
        makegw(spec)
    # The jump host could not resolve it (its network has no DNS: "Temporary failure in
    # name resolution" here): its own line, quoted.
    assert "open failed: connect failed: " in unshared.value.reason
    assert info.value.returncode == 255


# -- ssh from a via host -------------------------------------------------------------


def test_ssh_from_a_via_host(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    # The via host (a popen child here) runs the ssh client; the gateway's IO is proxied.
    hop = makegw("popen//id=local")
    gw = makegw(_spec(sshd_hosts, "a"), via=hop)
    assert gw.child_pid is None
    assert gw.via_gateway is hop
    assert _where(gw)[0] == "a"
    through = makegw(_spec(sshd_hosts, "c", "//ssh_jump=a,b"), via=hop)  # and through jumps
    assert _where(through)[0] == "c"


def test_ssh_from_a_host_inside_the_inner_network(
    sshd_hosts: SshHosts, makegw: MakeGateway
) -> None:
    # a's sessions live in network 1, where b listens: an ssh client started there
    # reaches b directly (no jump), and c through b, which this process cannot.
    on_a = makegw(_spec(sshd_hosts, "a"))
    gw = makegw(_spec(sshd_hosts, "b"), via=on_a)
    assert _where(gw)[0] == "b"
    assert gw._rinfo().pid != on_a._rinfo().pid
    deeper = makegw(_spec(sshd_hosts, "c", "//ssh_jump=b"), via=on_a)
    assert _where(deeper)[0] == "c"
    further = makegw("popen//id=deepest", via=deeper)  # and a popen child on c
    ch = further.remote_exec(
        "import os; channel.send((os.environ.get('EXECNET_HOST'), os.getppid()))"
    )
    assert ch.receive(30) == ("c", deeper._rinfo().pid)  # c's interpreter started it


def test_ssh_errors_from_a_via_host(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    hop = makegw("popen//id=local")
    with pytest.raises(HostNotFound) as info:
        makegw(_spec(sshd_hosts, "b", "//ssh_timeout=10"), via=hop)  # b: not from here
    assert "Connection refused" in info.value.reason
    b, c = sshd_hosts["b"], sshd_hosts["c"]
    spec = f"//ssh_port={b.port}//ssh_jump=a//ssh_identity={c.identity}"
    with pytest.raises(SshAuthenticationError) as refused:
        makegw(_spec(sshd_hosts, b.address, spec), via=hop)
    assert "Permission denied" in refused.value.reason
    assert hop.remote_exec("channel.send(1)").receive(30) == 1  # the hop lives on


def test_inner_host_key_mismatch(sshd_hosts: SshHosts, makegw: MakeGateway, tmp_path: Path) -> None:
    # Known hosts that give b c's host key: the jump host checks out, b does not.
    a, b, c = sshd_hosts["a"], sshd_hosts["b"], sshd_hosts["c"]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        f"[{a.address}]:{a.port} {Path(f'{a.host_key}.pub').read_text()}"
        f"[{b.address}]:{b.port} {Path(f'{c.host_key}.pub').read_text()}"
    )
    with pytest.raises(HostKeyMismatch) as info:
        makegw(_spec(sshd_hosts, f"-o UserKnownHostsFile={wrong} b", "//ssh_jump=a"))
    assert "Host key verification failed." in info.value.reason


def test_a_dead_master_wakes_every_gateway_on_it(sshd_hosts: SshHosts, makegw: MakeGateway) -> None:
    spec = _spec(sshd_hosts, "b", "//ssh_jump=a")
    gateways = [makegw(spec) for _ in range(3)]
    waiters = [gw.remote_exec("channel.receive()") for gw in gateways]
    path = _control_path(gateways[0])
    check = subprocess.run(
        ["ssh", "-o", f"ControlPath={path}", "-O", "check", "b"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    master = int(check.stderr.split("pid=")[1].split(")")[0])  # "Master running (pid=N)"
    os.kill(master, signal.SIGKILL)
    for gw, waiter in zip(gateways, waiters):
        with pytest.raises(EOFError) as info:
            waiter.receive(30)
        assert f"gateway {gw.id!r}" in str(info.value)
        assert "the remote process ended" in str(info.value)


def test_a_new_master_after_the_last_gateway_to_a_host_ended(
    sshd_hosts: SshHosts, makegw: MakeGateway
) -> None:
    on_a = makegw(_spec(sshd_hosts, "a"))  # keeps the control directory in use
    first = makegw(_spec(sshd_hosts, "b", "//ssh_jump=a"))
    old = _control_path(first)
    first.exit()
    first.join(30)
    first.wait_child(30)
    # b's master is told to exit: a later gateway to b starts a master of its own on a
    # new control path instead of joining the one that is going away.
    again = makegw(_spec(sshd_hosts, "b", "//ssh_jump=a"))
    assert _control_path(again) != old
    assert os.path.dirname(_control_path(again)) == os.path.dirname(old)
    assert _where(again)[0] == "b"
    assert _where(on_a)[0] == "a"
