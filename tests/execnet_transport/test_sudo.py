"""sudo=USER (issue 15): the interpreter runs as another user through `sudo -n -u USER`.

Real sudo (Debian's package): root runs code as `nobody`, proven by the uid and by the
owner of a file the remote writes. Needs root (CI runs as root); elsewhere the tests
skip with that reason. The interpreter is Debian's /usr/bin/python3: pyenv's live under
/root, which nobody cannot enter.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import parts
import pytest
from sshd import SshServer

from execnet_transport import BootstrapError, Gateway, SshError

MakeGateway = Callable[..., Gateway]
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def nobody() -> int:
    if shutil.which("sudo") is None:
        parts.missing("sudo is not installed (apt-get install sudo)")
    if os.geteuid() != 0:
        pytest.skip("running as another user without a password needs root here (CI is root)")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        parts.missing(f"{SYSTEM_PYTHON} is not installed (apt-get install python3)")
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may write to (tmp_path's parents are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="execnet-sudo-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


WRITE = """
import os
path = os.path.join(channel.receive(), "written")
with open(path, "w") as f:
    f.write("x")
channel.send((os.getuid(), os.geteuid(), path))
"""


def test_popen_as_nobody(nobody: int, open_dir: Path, makegw: MakeGateway) -> None:
    gw = makegw(f"popen//sudo=nobody//python={SYSTEM_PYTHON}//env:MARK=1")
    channel = gw.remote_exec(WRITE)
    channel.send(str(open_dir))
    uid, euid, path = channel.receive(10)
    assert uid == euid == nobody
    assert os.stat(path).st_uid == nobody
    assert gw.remote_exec("import os; channel.send(os.environ['MARK'])").receive(10) == "1"


def test_ssh_then_sudo(nobody: int, open_dir: Path, sshd: SshServer, makegw: MakeGateway) -> None:
    gw = makegw(
        f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//sudo=nobody//python={SYSTEM_PYTHON}"
    )
    channel = gw.remote_exec(WRITE)
    channel.send(str(open_dir))
    uid, _, path = channel.receive(10)
    assert uid == nobody
    assert os.stat(path).st_uid == nobody


def test_a_password_requirement_fails_at_once(nobody: int, makegw: MakeGateway) -> None:
    # nobody may not sudo without a password: the via host's sudo -n says so at once.
    hop = makegw(f"popen//sudo=nobody//python={SYSTEM_PYTHON}")
    with pytest.raises(BootstrapError) as info:
        makegw(f"popen//sudo=root//python={SYSTEM_PYTHON}", via=hop)
    assert "needs a password here (sudo= never prompts)" in str(info.value)
    assert "sudo: a password is required" in info.value.reason


def test_unknown_user(nobody: int, makegw: MakeGateway, sshd: SshServer) -> None:
    with pytest.raises(BootstrapError, match="unknown user"):
        makegw(f"popen//sudo=no-such-user-x//python={SYSTEM_PYTHON}")
    with pytest.raises(SshError, match="sudo -n -u no-such-user-x refused"):
        makegw(f"ssh={sshd.alias}//ssh_config={sshd.ssh_config}//sudo=no-such-user-x")


def test_default_python_is_this_one(nobody: int, makegw: MakeGateway) -> None:
    # Without python=, popen runs this interpreter; under /root nobody cannot run it,
    # and the error says what sudo's child said.
    if not sys.executable.startswith("/root/"):
        pytest.skip("this interpreter is readable by nobody")
    with pytest.raises(BootstrapError, match="sudo=nobody") as info:
        makegw("popen//sudo=nobody")
    assert info.value.returncode != 0


def test_fork_everywhere_leaves_sudo_plain(
    nobody: int, makegw: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXECNET_FORK=1 forks no sudo= child (a server cannot pass its socket through sudo):
    the child starts as before, as the other user, and no fork server starts."""
    from execnet_transport import _forkserver

    monkeypatch.setenv("EXECNET_FORK", "1")
    gw = makegw(f"popen//sudo=nobody//python={SYSTEM_PYTHON}")
    assert gw.remote_exec("import os; channel.send(os.getuid())").receive(30) == nobody
    assert _forkserver.running_servers() == {}
