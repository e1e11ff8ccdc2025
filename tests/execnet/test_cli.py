"""The `execnet` command, run as the installed console script in a subprocess."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

SCRIPT = Path(sys.executable).parent / "execnet"


def run(*args: str, timeout: float = 90, **kwargs: object) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    return subprocess.run(
        [str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )  # type: ignore[call-overload, no-any-return]


@pytest.mark.parametrize("command", [[], ["info"], ["exec"], ["rsync"], ["serve"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: execnet" in result.stdout
    if not command:
        assert "exit codes" in result.stdout
        for name in ("info", "exec", "rsync", "serve"):
            assert name in result.stdout


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_version() -> None:
    assert run("--version").stdout.strip() == "execnet 2.2.0"


def test_info_two_interpreters() -> None:
    from parts import other_interpreter

    other = other_interpreter()
    result = run("info", "popen", f"popen//python={other}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header == ["id", "spec", "python", "implementation", "platform", "pid", "cwd", "startup"]
    rows = [line.split() for line in lines[1:] if line.strip()]
    assert [row[0] for row in rows] == ["gw0", "gw1"]
    assert rows[0][2] == ".".join(map(str, sys.version_info[:3]))
    assert rows[1][1] == f"popen//python={other}"
    assert rows[1][2].startswith(Path(other).name[len("python") :] + ".")
    assert rows[0][3] == "CPython"
    assert rows[0][4] == sys.platform
    assert rows[0][6] == os.getcwd()
    assert rows[0][7].endswith("ms")


def test_info_readme_main_job() -> None:
    """The repository README's main command: `execnet info popen popen//python=python3`."""
    from parts import python3_on_path

    version = subprocess.run(
        [python3_on_path(), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    result = run("info", "popen", "popen//python=python3")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows[1][1] == "popen//python=python3"
    assert rows[1][2] == version


def test_info_takes_python_as_written() -> None:
    """A bare name is looked up on PATH only, like a shell would: no search elsewhere."""
    result = run("info", "popen//python=python3.99")
    assert result.returncode == 3
    assert "cannot start gateway 'popen//python=python3.99'" in result.stderr


def test_info_bad_spec_is_one_clear_line() -> None:
    result = run("info", "popen//")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("execnet: error: bad spec 'popen//'")


def test_info_gateway_that_cannot_start() -> None:
    result = run("info", "popen", "popen//python=no-such-python-here")
    assert result.returncode == 3
    assert "gw0" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("execnet:")]
    assert len(errors) == 1
    assert "no-such-python-here" in errors[0]
    assert errors[0].startswith("execnet: error: cannot start gateway 'popen//python=no-such")


def test_info_host_not_found() -> None:
    result = run("info", "ssh=-o ConnectTimeout=5 no-such-host.invalid")
    assert result.returncode == 3
    # ssh's own complaint comes first (the child's stderr stays visible), then ours
    ours = [line for line in result.stderr.splitlines() if line.startswith("execnet:")]
    assert len(ours) == 1
    assert ours[0].startswith("execnet: error: host not found for spec 'ssh=-o ConnectTimeout=5")
    assert result.stderr.splitlines()[-1] == ours[0]


def test_exec_prints_every_item() -> None:
    result = run("exec", "popen", "for i in range(3): channel.send(i)\nchannel.send('done')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0", "1", "2", "done"]


def test_exec_with_args_and_file(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("channel.send(greeting + ', ' + name)\n")
    result = run(
        "exec", "popen", "-f", str(script), "--arg", "greeting=hello", "--arg", "name=world"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello, world\n"


def test_exec_remote_error_prints_the_remote_traceback(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("channel.send('before')\n\nraise ValueError('remote went wrong')\n")
    result = run("exec", "popen", "-f", str(script))
    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert "ValueError: remote went wrong" in result.stderr
    assert f'File "{script}", line 3' in result.stderr


def test_exec_usage_errors(tmp_path: Path) -> None:
    assert run("exec", "popen").returncode == 2
    assert run("exec", "popen", "pass", "-f", "x.py").returncode == 2
    bad_arg = run("exec", "popen", "pass", "--arg", "no-equals")
    assert bad_arg.returncode == 2
    assert "NAME=VALUE" in bad_arg.stderr
    missing = run("exec", "popen", "-f", str(tmp_path / "missing.py"))
    assert missing.returncode == 2
    assert "missing.py" in missing.stderr


def test_rsync_piped_is_quiet(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.txt").write_text("beta" * 1000)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    result = run("rsync", str(src), f"popen:{dest}", "--delete")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (dest / "a.txt").read_text() == "alpha"
    assert (dest / "sub" / "b.txt").read_text() == "beta" * 1000
    assert not (dest / "stale.txt").exists()


def test_rsync_progress_on_a_terminal(tmp_path: Path) -> None:
    import pty

    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(b"x" * 100_000)
    dest = tmp_path / "dest"
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [str(SCRIPT), "rsync", str(src), f"popen:{dest}"],
            check=False,
            stdout=follower,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=90,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        )
        os.close(follower)
        follower = -1
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert proc.returncode == 0, proc.stderr
    assert b"1 files" in output or b"1 file" in output
    assert (dest / "f.bin").read_bytes() == b"x" * 100_000


def test_rsync_usage_errors(tmp_path: Path) -> None:
    missing = run("rsync", str(tmp_path / "nope"), "popen:/tmp/x")
    assert missing.returncode == 2
    no_dest = run("rsync", str(tmp_path), "popen")
    assert no_dest.returncode == 2
    assert "SPEC:DEST" in no_dest.stderr


def test_serve_then_use_it(socket_server) -> None:  # type: ignore[no-untyped-def]
    import execnet

    address, server = socket_server(str(SCRIPT), "serve", "ADDRESS", "--loop")
    for _ in range(2):  # one client after another
        result = run("exec", f"socket={address}", "import os; channel.send(os.getpid())")
        assert result.returncode == 0, result.stderr
        assert int(result.stdout) != server.pid
    group = execnet.Group()
    try:
        gw = group.makegateway(f"socket={address}")
        assert gw.remote_exec("channel.send(1)").receive(30) == 1
    finally:
        group.terminate(5)


def test_serve_bad_address_and_empty_secret(tmp_path: Path) -> None:
    bad = run("serve", "nowhere")
    assert bad.returncode == 2
    assert "HOST:PORT" in bad.stderr
    empty = tmp_path / "secret"
    empty.write_text("")
    result = run("serve", "127.0.0.1:0", "--secret-file", str(empty))
    assert result.returncode == 2
    assert "empty" in result.stderr


def test_serve_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run("serve", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1


def test_exec_remote_that_dies_is_one_line_and_exit_1() -> None:
    result = run("exec", "popen", "import os\nchannel.send('bye')\nos._exit(3)")
    assert result.returncode == 1
    assert result.stdout == "bye\n"
    ours = [line for line in result.stderr.splitlines() if line.startswith("execnet:")]
    assert len(ours) == 1
    assert "connection lost" in ours[0]


def test_rsync_to_a_gateway_that_cannot_start(tmp_path: Path) -> None:
    result = run("rsync", str(tmp_path), "popen//python=no-such-python-either:/tmp/x")
    assert result.returncode == 3
    assert "no-such-python-either" in result.stderr.splitlines()[-1]


def test_serve_without_loop_serves_one_client_and_ends(socket_server) -> None:  # type: ignore[no-untyped-def]
    address, server = socket_server(str(SCRIPT), "serve", "ADDRESS")
    result = run("exec", f"socket={address}", "channel.send('served')")
    assert result.stdout == "served\n", result.stderr
    assert server.wait(30) == 0


def test_serve_with_a_secret_file(tmp_path: Path, socket_server) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret"
    secret.write_text("s3cret-for-the-test\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret\n")
    address, _ = socket_server(
        str(SCRIPT),
        "serve",
        "ADDRESS",
        "--secret-file",
        str(secret),
        "--loop",
        stderr=subprocess.PIPE,
    )
    good = run("exec", f"socket={address}//secret_file={secret}", "channel.send(7)")
    assert (good.returncode, good.stdout) == (0, "7\n"), good.stderr
    bad = run("exec", f"socket={address}//secret_file={wrong}", "channel.send(7)")
    assert bad.returncode == 3
    assert bad.stdout == ""
    plain = run("exec", f"socket={address}", "channel.send(7)")
    assert plain.returncode == 3
    assert plain.stdout == ""


# -- serve: TLS, authentication, one-shot ---------------------------------------------


def test_serve_tls_and_mutual_tls_end_to_end(socket_server, pki) -> None:  # type: ignore[no-untyped-def]
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    address, _ = socket_server(str(SCRIPT), "serve", "ADDRESS", "--loop", *tls)
    result = run("exec", f"socket={address}//tls_ca={pki.ca}", "channel.send('over tls')")
    assert (result.returncode, result.stdout) == (0, "over tls\n"), result.stderr
    untrusted = run("exec", f"socket={address}//tls_ca={pki.other_ca}", "channel.send(1)")
    assert untrusted.returncode == 3
    assert "does not verify" in untrusted.stderr
    # mutual TLS on every address (not only loopback): client certificates authenticate
    with _serving("0.0.0.0:0", "--loop", *tls, "--tls-client-ca", str(pki.ca)) as port:
        keys = f"tls_ca={pki.ca}//tls_cert={pki.client_cert}//tls_key={pki.client_key}"
        result = run("exec", f"socket=127.0.0.1:{port}//{keys}", "channel.send('mutual')")
        assert (result.returncode, result.stdout) == (0, "mutual\n"), result.stderr
        without = run("exec", f"socket=127.0.0.1:{port}//tls_ca={pki.ca}", "channel.send(1)")
        assert without.returncode == 3
        assert "client certificate" in without.stderr


@contextlib.contextmanager
def _serving(*args: str) -> Iterator[int]:
    """`execnet serve *args` until the block ends; the port it listens on."""
    server = subprocess.Popen(
        [str(SCRIPT), "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        yield int(line.rpartition(":")[2])
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_serve_refuses_an_open_exec_port(tmp_path: Path, pki) -> None:  # type: ignore[no-untyped-def]
    refused = run("serve", "0.0.0.0:0")
    assert refused.returncode == 2
    assert "without authentication" in refused.stderr
    assert "--allow-unauthenticated" in refused.stderr
    # TLS alone lets anyone with a TLS client in: it is no authentication either
    tls_only = run(
        "serve", "0.0.0.0:0", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)
    )
    assert tls_only.returncode == 2
    assert "without authentication" in tls_only.stderr


@pytest.mark.parametrize("options", [["--allow-unauthenticated"], ["--secret-file", "SECRET"]])
def test_serve_on_every_address_with_authentication_or_consent(
    options: list[str], tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a secret long enough to matter\n")
    with _serving("0.0.0.0:0", *[option.replace("SECRET", str(secret)) for option in options]):
        pass  # it listens


def test_serve_once_counts_only_an_authenticated_client(socket_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret"
    secret.write_text("the secret of this test\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the secret at all\n")
    address, server = socket_server(
        str(SCRIPT), "serve", "ADDRESS", "--secret-file", str(secret), stderr=subprocess.PIPE
    )
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port))) as idle:
        idle.sendall(b"not a client\n")  # refused, and not counted
        failed = run("exec", f"socket={address}//secret_file={wrong}", "channel.send(1)")
        assert failed.returncode == 3
        assert server.poll() is None  # still serving: nobody authenticated yet
        good = run("exec", f"socket={address}//secret_file={secret}", "channel.send('once')")
        assert (good.returncode, good.stdout) == (0, "once\n"), good.stderr
    assert server.wait(30) == 0  # served its one client, then ended


def test_serve_help_and_readme_agree_on_the_default() -> None:
    help_text = " ".join(run("serve", "--help").stdout.split())
    assert "serve one client" in help_text
    assert "--loop every client until interrupted" in help_text
    assert "without it: one client, then exit" in help_text
    readme = (
        Path(__file__).resolve().parents[2] / "packages" / "execnet" / "README.md"
    ).read_text()
    readme = " ".join(readme.split())
    assert "Serves one client (the first that completes the handshake" in readme
    assert "with `--loop` every client until interrupted" in readme
