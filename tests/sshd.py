"""A real OpenSSH server on 127.0.0.1 for the ssh tests, and a stand-in `vagrant`.

The session fixture `sshd` starts `/usr/sbin/sshd` on a free port with its own
sshd_config, a throwaway host key and a throwaway client key in a temporary
directory, and gives an `SshServer` that knows how to reach it:

    def test_true(sshd):
        subprocess.run([*sshd.ssh_command(), "true"], check=True)
        spec = f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}"   # or sshd.raw_args

`sshd.vagrant_path` is a directory holding an executable `vagrant` that runs
`vagrant ssh NAME -- cmd...` as `ssh -F <config> NAME -- cmd...` against the same
server (NAME is any of the config's host aliases); put it first on PATH.

The session fixture `sshd_hosts` runs three more OpenSSH servers as distinct hosts
behind one another (`SshHosts`; see its docstring): a jump host on 127.0.0.2, the only
one the test reaches directly, and two inner hosts in networks of their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import parts
import pytest

SSHD = "/usr/sbin/sshd"  # sshd refuses to start unless run by its absolute path
ALIAS = "execnet-sshd"
# What every test server allows: keys only, root (the test user) included; no PAM.
SSHD_COMMON = """\
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no"""


@dataclass
class SshServer:
    host: str
    port: int
    directory: Path
    ssh_config: Path  # client config: Host ALIAS and defaults for every host
    identity: Path  # the client's private key
    alias: str
    vagrant_path: Path  # a directory holding the stand-in `vagrant`
    process: subprocess.Popen  # type: ignore[type-arg]

    @property
    def raw_args(self) -> str:
        """ssh arguments reaching the server without a config file (the `ssh=` value)."""
        return (
            f"-p {self.port} -i {self.identity} -o StrictHostKeyChecking=no "
            f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes {self.host}"
        )

    def ssh_command(self) -> List[str]:
        """The ssh command line (through the config file) up to the remote command."""
        return ["ssh", "-F", str(self.ssh_config), self.alias, "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(host: str, port: int, process: subprocess.Popen, timeout: float) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            out = process.stderr.read() if process.stderr else b""
            raise RuntimeError(
                f"sshd exited with {process.returncode}: {out.decode(errors='replace')}"
            )
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not listen on {host}:{port} in {timeout}s") from None
            time.sleep(0.02)  # polling a port that is about to open; no event to wait on


def keygen(*keys: Path) -> None:
    """Throwaway ed25519 key pairs (no passphrase) at these paths, made side by side."""
    running = [
        subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        for key in keys
    ]
    for process in running:
        if process.wait() != 0:
            raise RuntimeError(f"ssh-keygen failed: {process.args}")


def _write_configs(
    directory: Path, port: int, home: Optional[Path] = None
) -> tuple[Path, Path, Path]:
    """sshd_config, ssh_config and the client key for a server on 127.0.0.1:port; with
    `home`, sessions get HOME=home (see `running_hosts`)."""
    host_key = directory / "ssh_host_ed25519_key"
    client_key = directory / "id_ed25519"
    keygen(host_key, client_key)
    authorized = directory / "authorized_keys"
    shutil.copy(f"{client_key}.pub", authorized)
    sshd_config = directory / "sshd_config"
    sshd_config.write_text(
        f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile {directory / "sshd.pid"}
AuthorizedKeysFile {authorized}
{SSHD_COMMON}
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
LogLevel ERROR
{f"SetEnv HOME={home}" if home is not None else ""}
"""
    )
    ssh_config = directory / "ssh_config"
    ssh_config.write_text(
        f"""\
Host {ALIAS} {ALIAS}-*
    HostName 127.0.0.1
    Port {port}

Host *
    IdentityFile {client_key}
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    BatchMode yes
    LogLevel ERROR
"""
    )
    return sshd_config, ssh_config, client_key


def _write_vagrant(directory: Path, ssh_config: Path) -> Path:
    bindir = directory / "vagrant-bin"
    bindir.mkdir()
    script = bindir / "vagrant"
    # Real `vagrant ssh NAME -- args` runs ssh into the machine with args as the remote
    # command; the stand-in does the same against our sshd, NAME being a config alias.
    script.write_text(
        f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
if len(args) < 2 or args[0] != "ssh":
    sys.exit("vagrant stand-in: only 'vagrant ssh NAME [-- cmd...]' is supported, got %r" % args)
name, rest = args[1], args[2:]
if rest and rest[0] == "--":
    rest = rest[1:]
os.execvp("ssh", ["ssh", "-F", {str(ssh_config)!r}, name, "--", *rest])
"""
    )
    script.chmod(0o755)
    return bindir


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """A running OpenSSH server on 127.0.0.1 (session-wide), with a client config."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        parts.missing("OpenSSH is not installed (apt-get install openssh-server openssh-client)")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    directory = Path(tempfile.mkdtemp(prefix="execnet-sshd-"))
    port = _free_port()
    sshd_config, ssh_config, client_key = _write_configs(directory, port)
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(sshd_config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening("127.0.0.1", port, process, timeout=30)
        yield SshServer(
            host="127.0.0.1",
            port=port,
            directory=directory,
            ssh_config=ssh_config,
            identity=client_key,
            alias=ALIAS,
            vagrant_path=_write_vagrant(directory, ssh_config),
            process=process,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)


# --- several hosts -----------------------------------------------------------------

INETD = Path(__file__).with_name("sshd_inetd.py")
HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
HOSTS_ALIAS = "execnet-host-"  # the config's aliases: execnet-host-a, -b, -c


@dataclass
class SshHost:
    name: str  # a, b or c; sshd sets EXECNET_HOST=<name> in every session it starts
    address: str
    port: int
    alias: str  # the ssh_config alias
    identity: Path  # the one client key this host accepts (authorized_keys)
    host_key: Path  # its host key (private; .pub beside it)
    log: Path  # sshd's log (LogLevel VERBOSE: "Accepted publickey ... from ADDR")


@dataclass
class SshHosts:
    """Three OpenSSH servers as three hosts, each with its own host key, its own
    authorized_keys (one client key each) and `SetEnv EXECNET_HOST=<name>`:

    - `a` (127.0.0.2) listens on this machine's loopback: the only one the test reaches
      directly; its sessions run in network 1 (a network namespace of their own);
    - `b` (127.0.0.3) listens in network 1, its sessions run in network 2;
    - `c` (127.0.0.4) listens in network 2.

    So `b` is reached through `a` (`ssh_jump=a`) and `c` through `a` then `b`
    (`ssh_jump=a,b`) and no other way: nothing listens on 127.0.0.3 or .4 here (their
    ports are held bound and unlistened by the fixture, so a connection is refused).
    Each sshd runs in inetd mode (`sshd -i`, one per connection) from
    tests/sshd_inetd.py, which listens in one network and runs sshd in the next. Inside
    a network the jump's forwarded connection comes from 127.0.0.1 (the kernel's source
    for 127.0.0.0/8), which is what the inner host's log and SSH_CONNECTION show.

    `ssh_config` names them `execnet-host-a` (also `a` and, for the jump host, its
    address) ... with their keys (an inner host's address is not a name there: reached
    by address, it gets no key from the config), and a known_hosts file holding each
    host key (`StrictHostKeyChecking yes`): landing anywhere else than the named host
    fails the host key check.
    """

    hosts: Dict[str, SshHost]
    ssh_config: Path
    known_hosts: Path
    directory: Path

    def __getitem__(self, name: str) -> SshHost:
        return self.hosts[name]


def _hosts_configs(directory: Path, home: Optional[Path]) -> Dict[str, SshHost]:
    keys = []
    for name in HOSTS:
        (directory / name).mkdir()
        keys += [directory / name / "ssh_host_ed25519_key", directory / name / "id_ed25519"]
    keygen(*keys)
    hosts = {}
    for name, address in HOSTS.items():
        home = directory / name
        shutil.copy(home / "id_ed25519.pub", home / "authorized_keys")
        (home / "sshd_config").write_text(
            f"""\
HostKey {home / "ssh_host_ed25519_key"}
PidFile none
AuthorizedKeysFile {home / "authorized_keys"}
{SSHD_COMMON}
SetEnv EXECNET_HOST={name}{f" HOME={home}" if home is not None else ""}
LogLevel VERBOSE
"""
        )
        hosts[name] = SshHost(
            name=name,
            address=address,
            port=0,
            alias=HOSTS_ALIAS + name,
            identity=home / "id_ed25519",
            host_key=home / "ssh_host_ed25519_key",
            log=home / "sshd.log",
        )
    return hosts


def _start_inetd(
    host: SshHost, directory: Path, enter: Optional[int], new_network: bool
) -> Tuple[subprocess.Popen[bytes], int]:
    args = [sys.executable, str(INETD), host.address, str(host.port)]
    args += [str(directory / host.name / "sshd_config"), str(host.log)]
    if enter is not None:
        args += ["--enter", f"/proc/{enter}/ns/net"]
    if new_network:
        args.append("--new-network")
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()  # "ready <pid>", or nothing if it failed
    if not line.startswith("ready "):
        process.wait(10)
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if "Operation not permitted" in error:
            raise PartMissing(f"network namespaces are not allowed here: {error.strip()[-200:]}")
        raise RuntimeError(f"sshd_inetd.py for host {host.name} failed: {error}")
    return process, int(line.split()[1])


class PartMissing(Exception):
    """What `running_hosts` needs is not on this machine (the text says what)."""


@pytest.fixture(scope="session")
def sshd_hosts() -> Iterator[SshHosts]:
    """Three real sshd hosts, a jump host and two behind it (session-wide): `SshHosts`."""
    try:
        with running_hosts() as hosts:
            yield hosts
    except PartMissing as missing:
        parts.missing(str(missing))


@contextlib.contextmanager
def running_hosts(home: Optional[Path] = None) -> Iterator[SshHosts]:
    """`SshHosts`, running until the block ends (the fixture's, and the benchmarks').

    `home`: a directory sshd gives every session as HOME (`SetEnv`) instead of the
    account's own, so the login shell reads no rc file of this machine's account.
    """
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        raise PartMissing(
            "OpenSSH is not installed (apt-get install openssh-server openssh-client)"
        )
    if sys.platform != "linux":
        raise PartMissing("the inner hosts live in Linux network namespaces")
    os.makedirs("/run/sshd", exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="execnet-sshd-hosts-"))
    hosts = _hosts_configs(directory, home)
    # Free ports on this machine's loopback; the inner hosts' stay bound here (never
    # listening), so a direct connection to them is refused whatever else runs here.
    held = []
    for host in hosts.values():
        sock = socket.socket()
        sock.bind((host.address, 0))
        host.port = sock.getsockname()[1]
        if host.name == "a":
            sock.close()  # a listens on it itself
        else:
            held.append(sock)
    running: List[subprocess.Popen[bytes]] = []
    try:
        _, pid_a = _keep(running, _start_inetd(hosts["a"], directory, None, True))
        _, pid_b = _keep(running, _start_inetd(hosts["b"], directory, pid_a, True))
        _keep(running, _start_inetd(hosts["c"], directory, pid_b, False))
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(
            "".join(
                f"[{host.address}]:{host.port} {Path(f'{host.host_key}.pub').read_text()}"
                for host in hosts.values()
            )
        )
        ssh_config = directory / "ssh_config"
        ssh_config.write_text(
            "".join(
                f"Host {host.alias} {host.name}{' ' + host.address if host.name == 'a' else ''}\n"
                f"    HostName {host.address}\n"
                f"    Port {host.port}\n    IdentityFile {host.identity}\n\n"
                for host in hosts.values()
            )
            + f"""\
Host *
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile {known_hosts}
    GlobalKnownHostsFile /dev/null
    BatchMode yes
"""
        )
        _wait_listening(hosts["a"].address, hosts["a"].port, running[0], timeout=30)
        yield SshHosts(
            hosts=hosts, ssh_config=ssh_config, known_hosts=known_hosts, directory=directory
        )
    finally:
        for process in reversed(running):
            if process.stdin is not None:
                process.stdin.close()  # it ends at EOF
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        for sock in held:
            sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def _keep(
    running: List[subprocess.Popen[bytes]], started: Tuple[subprocess.Popen[bytes], int]
) -> Tuple[subprocess.Popen[bytes], int]:
    running.append(started[0])
    return started
