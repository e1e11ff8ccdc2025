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
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import parts
import pytest

SSHD = "/usr/sbin/sshd"  # sshd refuses to start unless run by its absolute path
ALIAS = "execnet-sshd"


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


def _write_configs(directory: Path, port: int) -> tuple[Path, Path, Path]:
    host_key = directory / "ssh_host_ed25519_key"
    client_key = directory / "id_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
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
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
LogLevel ERROR
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
