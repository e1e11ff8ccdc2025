"""execnet's socket server: serves many clients at once, optionally behind a shared secret.

    python -m execnet_transport.socketserver                  # 127.0.0.1:8888
    python -m execnet_transport.socketserver 0.0.0.0:8888 --secret-file ~/.execnet-secret

The long-standing handshake: a client sends one line holding the repr of a Python source
string; the server execs it with the accepted socket bound to ``clientsock``. Each
connection is served in a child process of its own, so one client's hung code does not
block another. With ``--secret-file`` the child first sends ``EXECNET-HMAC-SHA256
<nonce>\\n`` and needs the line ``<hex HMAC-SHA256(secret, nonce)>\\n`` back before
anything is exec'd; a peer that fails is logged and disconnected.

It prints ``listening on HOST:PORT`` on stdout once bound (port 0 picks a free one).
Run through ``gateway.remote_exec(socketserver_module)`` it binds 127.0.0.1 on a free
port, sends ``(host, port)`` back on the channel and serves until that gateway ends.
This module uses only the standard library: it travels as remote_exec source.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from typing import Any, Callable, List, Optional, Tuple

__all__ = ["CHALLENGE", "main", "serve_socket"]

CHALLENGE = b"EXECNET-HMAC-SHA256 "
DEFAULT_ADDRESS = "127.0.0.1:8888"

# What each connection's child process runs: argv[1] is the accepted socket's fd; the
# secret (possibly empty) arrives on stdin so it never shows in a process listing.
_CONNECTION = r"""
import ast, hashlib, hmac, os, socket, sys
clientsock = socket.socket(fileno=int(sys.argv[1]))
secret = sys.stdin.buffer.read()
sys.stdin.close()
try:
    peer = "%s:%s" % clientsock.getpeername()[:2]
except OSError:
    peer = "?"
def log(text):
    sys.stderr.write("execnet socketserver [pid %d] %s: %s\n" % (os.getpid(), peer, text))
    sys.stderr.flush()
def readline(limit):
    # Peek, then take exactly the line: what follows it belongs to the exec'd code.
    data = b""
    while True:
        chunk = clientsock.recv(65536, socket.MSG_PEEK)
        if not chunk:
            raise EOFError("connection closed before a full line")
        end = chunk.find(b"\n")
        if end >= 0:
            return data + clientsock.recv(end + 1)[:-1]
        data += clientsock.recv(len(chunk))
        if len(data) > limit:
            raise ValueError("line longer than %d bytes" % limit)
try:
    if secret:
        clientsock.settimeout(30)
        nonce = os.urandom(32).hex().encode("ascii")
        clientsock.sendall(%(challenge)r + nonce + b"\n")
        answer = readline(1024).strip()
        expected = hmac.new(secret, nonce, hashlib.sha256).hexdigest().encode("ascii")
        if not hmac.compare_digest(answer, expected):
            log("refused: failed the shared-secret challenge; nothing was run")
            clientsock.close()
            sys.exit(1)
        clientsock.settimeout(None)
    source = ast.literal_eval(readline(64 << 20).decode("utf-8"))
    if not isinstance(source, str):
        raise ValueError("the line is not the repr of a source string")
except Exception as exc:
    log("refused: %s" % (exc,))
    clientsock.close()
    sys.exit(1)
del secret
code = compile(source, "<socketserver client>", "exec")
exec(code, {"clientsock": clientsock, "__name__": "__socketserver__"})
""".replace("%(challenge)r", repr(CHALLENGE))


def _reap(children: List[subprocess.Popen[bytes]]) -> None:
    children[:] = [child for child in children if child.poll() is None]


def serve_socket(
    host: str = "127.0.0.1",
    port: int = 8888,
    *,
    loop: bool = True,
    secret: Optional[bytes] = None,
    on_listening: Optional[Callable[[str, int], None]] = None,
) -> None:
    """Serve execnet clients on host:port, each connection in a child process of its own.

    `loop=False` serves one connection and returns when its child ends; `secret`
    requires the HMAC challenge; `on_listening(host, port)` is called once bound.

        >>> serve_socket("127.0.0.1", 0, on_listening=lambda h, p: print(h, p))
    """
    server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(64)
    bound: Tuple[Any, ...] = server.getsockname()
    if on_listening is not None:
        on_listening(str(bound[0]), int(bound[1]))
    children: List[subprocess.Popen[bytes]] = []
    try:
        while True:
            connection, _ = server.accept()
            try:
                child = subprocess.Popen(
                    [sys.executable, "-c", _CONNECTION, str(connection.fileno())],
                    stdin=subprocess.PIPE,
                    pass_fds=(connection.fileno(),),
                )
                assert child.stdin is not None
                child.stdin.write(secret or b"")
                child.stdin.close()
                children.append(child)
            finally:
                connection.close()
            if not loop:
                child.wait()
                return
            _reap(children)
    finally:
        server.close()


def _parse_address(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8888)")
    return (host or "127.0.0.1").strip("[]"), int(port)


def main(argv: Optional[List[str]] = None) -> None:
    """The command line: ``[HOST:PORT] [--secret-file FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m execnet_transport.socketserver",
        description="Serve execnet clients: exec the source each one sends, in a child process.",
    )
    parser.add_argument("address", nargs="?", default=DEFAULT_ADDRESS, help="HOST:PORT")
    parser.add_argument("--secret-file", help="require clients to prove they know this secret")
    args = parser.parse_args(argv)
    try:
        host, port = _parse_address(args.address)
    except ValueError as exc:
        parser.error(str(exc))
    secret = b""
    if args.secret_file:
        with open(args.secret_file, "rb") as file:
            secret = file.read().strip()
        if not secret:
            parser.error(f"the secret file {args.secret_file!r} is empty")

    def announce(bound_host: str, bound_port: int) -> None:
        print(f"listening on {bound_host}:{bound_port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve_socket(host, port, secret=secret, on_listening=announce)


def _serve_for_channel(channel: Any) -> None:
    # remote_exec(this module): bind a free port and report it, then serve.
    def report(bound_host: str, bound_port: int) -> None:
        channel.send((bound_host, bound_port))

    serve_socket("127.0.0.1", 0, on_listening=report)


if __name__ == "__main__":
    main()
elif __name__ == "__channelexec__":
    _serve_for_channel(globals()["channel"])
