"""execnet's socket server: runs the code each client sends, in a process of its own.

    python -m execnet_transport.socketserver                  # 127.0.0.1:8888
    python -m execnet_transport.socketserver 0.0.0.0:8888 --secret-file ~/.execnet-secret
    python -m execnet_transport.socketserver 0.0.0.0:8888 --tls-cert server.pem \\
        --tls-key server.key --tls-client-ca clients-ca.pem

One process accepts every connection and takes it through the whole handshake itself,
under one deadline (``handshake_timeout``) and with at most ``max_pending`` connections
in it at once; only a client that completed it gets a process:

- No secret, no TLS: the long-standing handshake. The client sends one line holding the
  repr of a Python source string; that code runs in a new ``python -I`` process with the
  accepted socket bound to ``clientsock``. execnet 2.1.2's clients speak it, and our
  client speaks it to 2.1.2's servers. Anyone who can connect runs code: loopback only
  (serve_socket refuses any other address unless told ``allow_unauthenticated``).
- A secret or TLS: the EXECNET-2 handshake. The server greets with
  ``EXECNET-2 <auth> <server nonce>\\n`` (auth ``hmac-sha256`` when a secret is
  required, else ``none``); the client answers with a fixed-size header (its nonce, its
  proof, the source's length and MAC) and the source; the server answers
  ``OK <its proof>\\n``. Proofs and MAC are HMAC-SHA256 under a key derived from the
  secret and both nonces, each with its own label (``session_key``), compared in
  constant time: each side proves it knows the secret, a recorded or reflected proof is
  worth nothing, and a relay cannot swap the client's code for its own. With TLS
  (``ssl``; client certificates optional) the connection is also encrypted and
  integrity-protected, and the code runs in a fork of the server (the TLS session cannot
  move to a new interpreter), isolated as ``-I`` would: nothing from the working
  directory on ``sys.path``, the travelling packages dropped from ``sys.modules``.

Children are reaped when they end; a child that cannot be started is logged and the
server goes on. Everything is logged on stderr. Run through
``gateway.remote_exec(socketserver)`` (what ``socket//installvia=ID`` does) it first
receives ``(secret, accept_timeout)``, binds a free port on 127.0.0.1, sends
``("listening", host, port)``, accepts exactly one connection (the listening socket is
closed at once, or when nobody came within the timeout), which must prove the secret,
and sends ``("log", text)`` for what it logs. This module travels as remote_exec
source, so it imports only the standard library (and, for TLS, execnet_channel's
TLSConnection: a gateway's remote has the travelling packages).

It is one file, longer than our other modules, because it travels alone: remote_exec
sends one module's source, and a gateway's remote has nothing of this package to import
from. Its sections, in order: the EXECNET-2 handshake (pure functions over bytes, the
client half is ``execnet_transport._socket``); one connection through its handshake
(``_Handshake``, a non-blocking state machine); the children that serve clients
(``_Child``); the accept loop (``_Server``); ``serve_socket``; the command line; and
what runs under remote_exec (``_serve_for_channel``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import selectors
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

__all__ = [
    "PROTOCOL",
    "HANDSHAKE_TIMEOUT",
    "MAX_PENDING",
    "main",
    "serve_socket",
    "is_loopback",
    "session_key",
]

DEFAULT_ADDRESS = "127.0.0.1:8888"
PROTOCOL = b"EXECNET-2"
AUTH_SECRET = "hmac-sha256"
AUTH_NONE = "none"
NONCE_SIZE = 32
HANDSHAKE_TIMEOUT = 10.0  # seconds from accept to a started child, whatever the peer does
MAX_PENDING = 32  # connections in the handshake at once; more wait in the listen backlog
MAX_SOURCE = 1 << 20  # the source a client may send (execnet 2.1.2's line: ~62 KB)
REAP_INTERVAL = 1.0  # how often children are polled where there are no pidfds
ACCEPT_PAUSE = 0.5  # after accept() failed for lack of file descriptors
# The packages a client's bootstrap brings (execnet_transport._bundle.TRAVELLING_PACKAGES;
# this module travels alone, so it names them itself): a fork drops the server's copies.
TRAVELLING = ("execnet_serial", "execnet_channel")
# What one non-blocking read asks for at most: a socket buffer's worth.
_RECEIVE_CHUNK = 65536
# Connections the kernel queues for accept(): beyond MAX_PENDING in the handshake, they wait.
_BACKLOG = 64
# Below this, a recorded handshake lets an observer guess the secret offline.
_SHORT_SECRET = 16

# -- the EXECNET-2 handshake (the client half is in execnet_transport._socket) --------

_HEX = 2 * hashlib.sha256().digest_size  # 64 hex digits per nonce, proof or MAC
_LENGTH_DIGITS = 10  # the source's length, zero-padded: enough for MAX_SOURCE
#: nonce, proof, source length, source MAC, separated by spaces, then a newline
HEADER_SIZE = 3 * _HEX + _LENGTH_DIGITS + 4
REPLY_SIZE = len(b"OK ") + _HEX + 1


def greeting(auth: str, nonce: bytes) -> bytes:
    """The server's first line: ``EXECNET-2 <auth> <hex nonce>\\n``."""
    return PROTOCOL + b" " + auth.encode("ascii") + b" " + nonce.hex().encode("ascii") + b"\n"


def parse_greeting(line: bytes) -> Tuple[str, bytes]:
    """(auth, nonce) of a greeting line; ValueError if it is not one."""
    parts = line.rstrip(b"\n").split(b" ")
    if len(parts) != 3 or parts[0] != PROTOCOL or len(parts[2]) != 2 * NONCE_SIZE:
        raise ValueError(f"not an {PROTOCOL.decode()} greeting: {line[:80]!r}")
    return parts[1].decode("ascii", "replace"), bytes.fromhex(parts[2].decode("ascii"))


def session_key(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The key of one handshake: HMAC-SHA256 of both nonces under the secret.

    Without a secret (auth ``none``) the key is public and the proofs prove nothing;
    the format stays the same. Both halves derive it; a proof made with another secret
    or other nonces does not match:

        >>> key = session_key(b"a long shared secret", b"s" * NONCE_SIZE, b"c" * NONCE_SIZE)
        >>> check(server_reply(key), server_reply(key))
        True
        >>> other = session_key(b"another secret", b"s" * NONCE_SIZE, b"c" * NONCE_SIZE)
        >>> check(server_reply(key), server_reply(other))
        False
    """
    return hmac.new(
        secret, b"execnet-2 session\x00" + server_nonce + client_nonce, hashlib.sha256
    ).digest()


def _mac(key: bytes, label: bytes, data: bytes = b"") -> bytes:
    return (
        hmac.new(key, b"execnet-2 " + label + b"\x00" + data, hashlib.sha256).hexdigest().encode()
    )


def client_hello(key: bytes, client_nonce: bytes, source: bytes) -> bytes:
    """What the client sends after the greeting: the fixed-size header, then the source."""
    if len(source) > MAX_SOURCE:
        raise ValueError(f"the source is {len(source)} bytes; the server takes {MAX_SOURCE}")
    fields = [
        client_nonce.hex().encode("ascii"),
        client_proof(key),
        str(len(source)).zfill(_LENGTH_DIGITS).encode("ascii"),
        _mac(key, b"client source", source),
    ]
    return b" ".join(fields) + b"\n" + source


def parse_client_header(header: bytes) -> Tuple[bytes, bytes, int, bytes]:
    """(client nonce, proof, source length, source MAC); ValueError if malformed."""
    parts = header.split(b" ")
    if len(header) != HEADER_SIZE or not header.endswith(b"\n") or len(parts) != 4:
        raise ValueError("not an EXECNET-2 client header")
    nonce, proof, length, mac = parts[0], parts[1], parts[2], parts[3][:-1]
    if len(nonce) != 2 * NONCE_SIZE or not length.isdigit():
        raise ValueError("not an EXECNET-2 client header")
    return bytes.fromhex(nonce.decode("ascii")), proof, int(length), mac


def check(expected: bytes, got: bytes) -> bool:
    """Constant-time comparison of two proofs."""
    return hmac.compare_digest(expected, got)


def server_reply(key: bytes) -> bytes:
    """``OK <server proof>\\n``: the server knows the secret too."""
    return b"OK " + _mac(key, b"server proof") + b"\n"


def source_mac(key: bytes, source: bytes) -> bytes:
    return _mac(key, b"client source", source)


def client_proof(key: bytes) -> bytes:
    return _mac(key, b"client proof")


# -- the server ----------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address ('' is every address).

    serve_socket refuses to serve without authentication on a host that is not one.

        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("")
        (True, True, False, False)
    """
    import ipaddress

    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    try:
        return bool(infos) and all(
            ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
        )
    except ValueError:
        return False


def _server_tls_context(cert: str, key: Optional[str], client_ca: Optional[str]) -> Any:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.num_tickets = 0  # no session resumption: nothing to read after the handshake
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError too
        raise ValueError(f"cannot load the TLS certificate {cert} (key {key}): {exc}") from None
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(client_ca)
        except OSError as exc:
            raise ValueError(f"cannot load the client CA {client_ca}: {exc}") from None
    return context


class _Refused(Exception):
    """A peer that failed the handshake; the text says how."""


_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _Handshake:
    """One accepted connection on its way to a child: a non-blocking state machine.

    Memory grows only with what arrived, up to the header plus MAX_SOURCE.
    """

    def __init__(
        self, sock: Any, peer: str, deadline: float, tls: Any, secret: Optional[bytes]
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self.secret = secret
        self.authenticated = ""  # how, once it is
        framed = tls is not None or secret is not None  # EXECNET-2, not the line
        self.stage = "tls" if tls is not None else ("greet" if framed else "line")
        self.inbuf = bytearray()
        self.outbuf = b""
        self.nonce = os.urandom(NONCE_SIZE)
        self.key = b""
        self.length = 0
        self.mac = b""
        self.source = b""
        self.wait = 0  # what the last operation that would block waits for
        self._would_read: Tuple[Type[BaseException], ...] = (BlockingIOError,)
        self._would_write: Tuple[Type[BaseException], ...] = ()
        self._tls_error: Tuple[Type[BaseException], ...] = ()
        if tls is not None:
            import ssl

            self._would_read += (ssl.SSLWantReadError,)
            self._would_write = (ssl.SSLWantWriteError,)
            self._tls_error = (ssl.SSLError,)

    def advance(self) -> int:
        """Go as far as the peer allows: the events to wait for, or 0 once complete."""
        while True:
            if self.outbuf:
                sent = self._try(lambda: self.sock.send(self.outbuf))
                if sent is None:
                    return self.wait
                self.outbuf = self.outbuf[sent:]
                # then what a TLS connection did not send yet
                if not self.outbuf and self._try(lambda: self.sock.send(b"")) is None:
                    return self.wait
                continue
            stage = self.stage
            if stage == "tls":
                if self._try(self._tls_handshake) is None:
                    return self.wait
                self.stage = "greet"
            elif stage == "greet":
                auth = AUTH_SECRET if self.secret is not None else AUTH_NONE
                self.outbuf = greeting(auth, self.nonce)
                self.stage = "header"
            elif stage == "header":
                complete = self._fill(HEADER_SIZE)
                if b"\n" in self.inbuf[: HEADER_SIZE - 1]:  # a line, but not a header
                    self._check_header(bytes(self.inbuf))
                if not complete:
                    return self.wait
                self._check_header(bytes(self.inbuf))
                self.inbuf = bytearray()
                self.stage = "source"
            elif stage == "source":
                if not self._fill(self.length):
                    return self.wait
                self.source = bytes(self.inbuf)
                self.inbuf = bytearray()
                if not check(source_mac(self.key, self.source), self.mac):
                    raise _Refused("the source does not match its MAC (changed on the way?)")
                self.outbuf = server_reply(self.key)
                self.stage = "done"
            elif stage == "line":
                if not self._read_line():
                    return self.wait
                self.stage = "done"
            else:
                return 0

    def _try(self, operation: Callable[[], Any]) -> Any:
        """operation()'s result; None when it would block (``wait`` says on what)."""
        try:
            return operation()
        except self._would_read:
            self.wait = _READ
        except self._would_write:
            self.wait = _WRITE
        except self._tls_error as exc:
            raise _Refused(f"TLS: {getattr(exc, 'reason', None) or exc}") from None
        except OSError as exc:
            raise _Refused(f"connection failed: {exc}") from None
        return None

    def _tls_handshake(self) -> bool:
        self.sock.do_handshake()
        cert = self.sock.getpeercert()
        if cert:
            subject = dict(item for rdn in cert.get("subject", ()) for item in rdn)
            self.authenticated = f"TLS client certificate {subject.get('commonName', '?')!r}"
        return True

    def _recv(self, size: int, flags: int = 0) -> Optional[bytes]:
        """Up to `size` bytes; None when none are there yet; _Refused at the end."""
        data: Optional[bytes]
        if flags:
            data = self._try(lambda: self.sock.recv(size, flags))
        else:  # recv_into: what a non-blocking TLSConnection offers too
            buffer = bytearray(size)
            count = self._try(lambda: self.sock.recv_into(buffer))
            data = None if count is None else bytes(buffer[:count])
        if data == b"":
            raise _Refused(f"the connection closed during the handshake ({self.stage})")
        return data

    def _fill(self, size: int) -> bool:
        """Read until inbuf holds `size` bytes; False while it waits for more."""
        while len(self.inbuf) < size:
            data = self._recv(min(size - len(self.inbuf), _RECEIVE_CHUNK))
            if data is None:
                return False
            self.inbuf += data
        return True

    def _check_header(self, header: bytes) -> None:
        try:
            client_nonce, proof, self.length, self.mac = parse_client_header(header)
        except ValueError:
            raise _Refused(
                f"not an {PROTOCOL.decode()} client (sent {header[:40]!r}...: no secret or "
                "TLS settings, or execnet 2.1.2?); nothing was run"
            ) from None
        self.key = session_key(self.secret or b"", self.nonce, client_nonce)
        if not check(client_proof(self.key), proof):
            raise _Refused("failed the shared-secret proof; nothing was run")
        if self.length > MAX_SOURCE:
            raise _Refused(f"announced {self.length} bytes of source; at most {MAX_SOURCE}")
        if self.secret is not None:
            tls = self.authenticated
            self.authenticated = "the shared secret" + (" and " + tls if tls else "")

    def _read_line(self) -> bool:
        """The legacy line; False while it waits for more.

        Peeks, then takes exactly the line: what follows belongs to the code it holds.
        """
        while True:
            chunk = self._recv(_RECEIVE_CHUNK, socket.MSG_PEEK)
            if chunk is None:
                return False
            end = chunk.find(b"\n")
            taken = self._recv(len(chunk) if end < 0 else end + 1)
            self.inbuf += taken or b""
            if len(self.inbuf) > MAX_SOURCE + 1:
                raise _Refused(f"the source line is longer than {MAX_SOURCE} bytes")
            if end >= 0:
                break
        line = bytes(self.inbuf[:-1])
        self.inbuf = bytearray()
        self.source = _source_from_line(line).encode("utf-8")
        return True


def _source_from_line(line: bytes) -> str:
    """The source a line holds the repr of; _Refused for anything but a str literal."""
    import ast

    text = line.decode("utf-8", "replace").strip()
    if text[:1] not in ("'", '"'):  # a plain string literal: no nesting to parse
        raise _Refused(f"the line is not the repr of a source string: {text[:40]!r}")
    try:
        source = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _Refused(
            f"the line is not the repr of a source string ({exc.__class__.__name__})"
        ) from None
    if not isinstance(source, str):
        raise _Refused("the line is not the repr of a source string")
    return source


# What a child process runs (`python -I -c`): argv[1] is the accepted socket's fd; the
# source arrives on stdin, which then reads from /dev/null.
_CHILD = r"""
import os, socket, sys
clientsock = socket.socket(fileno=int(sys.argv[1]))
source = sys.stdin.buffer.read().decode("utf-8")
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
sys.stdin = open(os.devnull)
code = compile(source, "<socketserver client>", "exec")
exec(code, {"clientsock": clientsock, "__name__": "__socketserver__"})
"""


class _Child:
    """A process serving one client: a subprocess, or a fork of the server (TLS)."""

    def __init__(self, pid: int, peer: str, process: Optional[subprocess.Popen[bytes]]) -> None:
        self.pid = pid
        self.peer = peer
        self.process = process
        self.pidfd: Optional[int] = None
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]

    def poll(self, block: bool = False) -> Optional[int]:
        """The exit status once it ended (reaped), else None."""
        if self.process is not None:
            return self.process.wait() if block else self.process.poll()
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return -1
        if pid == 0:
            return None
        return (
            os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
        )

    def close(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


def _describe(status: int) -> str:
    return f"exit status {status}" if status >= 0 else f"killed by signal {-status}"


def _source_file(data: bytes) -> Any:
    """A file holding `data`, for a child's stdin: in memory where the system allows."""
    if hasattr(os, "memfd_create"):
        file: Any = os.fdopen(os.memfd_create("execnet-source"), "w+b")
    else:
        import tempfile

        file = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    file.write(data)
    file.flush()
    file.seek(0)
    return file


_LISTENER = object()


class _Server:
    """The accept loop: handshakes, children, deadlines, all in one thread."""

    def __init__(
        self,
        listener: socket.socket,
        *,
        loop: bool,
        secret: Optional[bytes],
        tls: Any,
        handshake_timeout: float,
        max_pending: int,
        single_connection: bool,
        accept_timeout: Optional[float],
        log: Callable[[str], None],
    ) -> None:
        self.listener: Optional[socket.socket] = listener
        self.loop = loop
        self.secret = secret
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.max_pending = max(1, max_pending)
        self.single_connection = single_connection
        self.accept_deadline = None if accept_timeout is None else time.monotonic() + accept_timeout
        self.accept_timeout = accept_timeout
        self.log = log
        self.selector = selectors.DefaultSelector()
        self.pending: Dict[int, _Handshake] = {}
        self.children: Dict[int, _Child] = {}
        self.accepting = False
        self.paused_until = 0.0
        self.served: Optional[_Child] = None  # one-shot: the child of the client served
        listener.setblocking(False)
        self._accept_on()

    # -- accepting ----------------------------------------------------------------

    def _accept_on(self) -> None:
        if not self.accepting and self.listener is not None:
            self.selector.register(self.listener, _READ, _LISTENER)
            self.accepting = True

    def _accept_off(self) -> None:
        if self.accepting and self.listener is not None:
            self.selector.unregister(self.listener)
            self.accepting = False

    def _close_listener(self) -> None:
        self._accept_off()
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def _accept(self) -> None:
        while self.listener is not None and len(self.pending) < self.max_pending:
            conn: Any
            try:
                conn, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the next accept may work
                self.log(f"accept failed: {exc}; pausing for {ACCEPT_PAUSE} s")
                self._accept_off()
                self.paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
            if self.single_connection:
                self._close_listener()  # used: nobody else gets in
            conn.setblocking(False)
            try:
                if self.tls is not None:
                    from execnet_channel import TLSConnection

                    conn = TLSConnection.server(conn, self.tls)
            except OSError as exc:
                self.log(f"{peer}: refused: TLS: {exc}")
                conn.close()
                continue
            handshake = _Handshake(
                conn, peer, time.monotonic() + self.handshake_timeout, self.tls, self.secret
            )
            self.pending[conn.fileno()] = handshake
            self.selector.register(conn, _READ, handshake)
            self._step(handshake)
        if self.listener is not None and len(self.pending) >= self.max_pending:
            self._accept_off()
            self.log(
                f"{len(self.pending)} connections are in the handshake (the most allowed): "
                "new ones wait until one is done"
            )

    # -- handshakes ---------------------------------------------------------------

    def _step(self, handshake: _Handshake) -> None:
        try:
            wait = handshake.advance()
        except _Refused as exc:
            self._drop(handshake, f"refused: {exc}")
            return
        except Exception as exc:  # a bug must cost this connection only
            self._drop(handshake, f"refused: {exc.__class__.__name__}: {exc}")
            return
        if wait:
            self.selector.modify(handshake.sock, wait, handshake)
            return
        self._forget(handshake)
        self._start_child(handshake)

    def _forget(self, handshake: _Handshake) -> None:
        self.pending.pop(handshake.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(handshake.sock)
        if self.listener is not None and not self.paused_until and self._wanted():
            self._accept_on()

    def _drop(self, handshake: _Handshake, why: str) -> None:
        self.log(f"{handshake.peer}: {why}")  # before the peer can see the end
        self._forget(handshake)
        with contextlib.suppress(OSError):
            handshake.sock.send(b"")  # TLS: an alert saying why, if one was made
        handshake.sock.close()

    def _wanted(self) -> bool:
        return self.served is None and len(self.pending) < self.max_pending

    def _expire(self, now: float) -> None:
        for handshake in list(self.pending.values()):
            if now >= handshake.deadline:
                self._drop(
                    handshake,
                    f"refused: no complete handshake within {self.handshake_timeout:g} s",
                )

    # -- children -----------------------------------------------------------------

    def _start_child(self, handshake: _Handshake) -> None:
        sock = handshake.sock
        try:
            sock.setblocking(True)  # for the child (the flag is shared; TLS: recv waits)
            child = self._fork(handshake) if self.tls is not None else self._spawn(handshake)
        except Exception as exc:  # OSError mostly: no interpreter, no memory, no pids
            self.log(f"{handshake.peer}: cannot start a process for it: {exc}")
            sock.close()
            return
        sock.close()
        how = handshake.authenticated
        how = f"authenticated by {how}" if how else "not authenticated (none required)"
        self.log(f"{handshake.peer}: {how}; served by pid {child.pid}")
        self.children[child.pid] = child
        if child.pidfd is not None:
            self.selector.register(child.pidfd, _READ, child)
        if not self.loop or self.single_connection:
            self.served = child
            self._close_listener()
            for other in list(self.pending.values()):
                self._drop(other, "closed: the server served its one client")

    def _spawn(self, handshake: _Handshake) -> _Child:
        fd = handshake.sock.fileno()
        with _source_file(handshake.source) as stdin:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _CHILD, str(fd)], stdin=stdin, pass_fds=(fd,)
            )
        return _Child(process.pid, handshake.peer, process)

    def _fork(self, handshake: _Handshake) -> _Child:
        pid = os.fork()
        if pid == 0:  # pragma: no cover (runs in the child, which never returns)
            self._become_child(handshake)
        return _Child(pid, handshake.peer, None)

    def _become_child(self, handshake: _Handshake) -> None:
        """In a fork: drop the server, isolate, run the client's code, exit."""
        status = 1
        try:
            if self.listener is not None:
                self.listener.close()
            self.selector.close()
            for other in self.pending.values():
                other.sock.close()
            for child in self.children.values():
                child.close()
            _isolate()
            source = handshake.source.decode("utf-8")
            namespace = {"clientsock": handshake.sock, "__name__": "__socketserver__"}
            exec(compile(source, "<socketserver client>", "exec"), namespace)
            _join_threads()
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):  # closed by the code
                    stream.flush()
            os._exit(status)

    def _reap(self, block: bool = False) -> None:
        for child in list(self.children.values()):
            status = child.poll(block and child is self.served)
            if status is None:
                continue
            del self.children[child.pid]
            if child.pidfd is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(child.pidfd)
            child.close()
            self.log(f"{child.peer}: pid {child.pid} ended ({_describe(status)})")

    # -- the loop -----------------------------------------------------------------

    def _timeout(self, now: float) -> Optional[float]:
        deadlines = [handshake.deadline for handshake in self.pending.values()]
        if self.accept_deadline is not None and self.listener is not None:
            deadlines.append(self.accept_deadline)
        if self.paused_until:
            deadlines.append(self.paused_until)
        if any(child.pidfd is None for child in self.children.values()):
            deadlines.append(now + REAP_INTERVAL)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def run(self) -> None:
        try:
            while True:
                if self.served is not None and not self.pending:
                    served = self.served
                    while served.pid in self.children:
                        self._reap(block=True)
                    return
                if self.listener is None and not self.pending and self.served is None:
                    return  # the single connection failed, or nobody came
                now = time.monotonic()
                for key, _ in self.selector.select(self._timeout(now)):
                    if key.data is _LISTENER:
                        self._accept()
                    elif isinstance(key.data, _Handshake):
                        if key.data.sock.fileno() in self.pending:
                            self._step(key.data)
                    else:
                        self._reap()
                now = time.monotonic()
                self._expire(now)
                if self.paused_until and now >= self.paused_until:
                    self.paused_until = 0.0
                    if self._wanted():
                        self._accept_on()
                if (
                    self.accept_deadline is not None
                    and self.listener is not None
                    and now >= self.accept_deadline
                ):
                    self.log(f"nobody connected within {self.accept_timeout:g} s: closing")
                    self._close_listener()
                self._reap()
        finally:
            self._close_listener()
            for handshake in list(self.pending.values()):
                handshake.sock.close()
            self.pending.clear()
            for child in self.children.values():
                child.close()
            self.selector.close()


def _isolate() -> None:
    """What ``python -I`` gives a new interpreter, for a fork of the server."""
    cwd = os.getcwd()
    sys.path[:] = [path for path in sys.path if path and os.path.abspath(path) != cwd]
    for name in list(sys.modules):
        if name.partition(".")[0] in TRAVELLING:
            del sys.modules[name]  # the client brings its own
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the process's stdin for good


def _join_threads() -> None:
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def _stderr_log(text: str) -> None:
    sys.stderr.write(f"execnet socketserver [pid {os.getpid()}] {text}\n")
    sys.stderr.flush()


def serve_socket(
    host: str = "127.0.0.1",
    port: int = 8888,
    *,
    loop: bool = True,
    secret: Optional[bytes] = None,
    tls_cert: Optional[str] = None,
    tls_key: Optional[str] = None,
    tls_client_ca: Optional[str] = None,
    allow_unauthenticated: bool = False,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    max_pending: int = MAX_PENDING,
    single_connection: bool = False,
    accept_timeout: Optional[float] = None,
    on_listening: Optional[Callable[[str, int], None]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> None:
    """Serve execnet clients on host:port, each in a process of its own, until interrupted.

    - `secret`: clients must prove they know it (and the server proves it too);
    - `tls_cert`/`tls_key`: TLS with this certificate chain and key; `tls_client_ca`:
      only clients with a certificate signed by this CA get in (mutual TLS);
    - a host that is not loopback needs a secret or client certificates, unless
      `allow_unauthenticated` accepts an open exec port (ValueError otherwise);
    - `loop=False`: serve the first client that completes the handshake, wait for its
      process to end and return (clients that fail do not count);
    - `single_connection`: close the listening socket after the first connection,
      whatever it does; `accept_timeout`: and when none came within that many seconds;
    - `handshake_timeout`: seconds from accept to a started child; `max_pending`: how
      many connections may be in the handshake at once (more wait in the backlog);
    - `on_listening(host, port)` is called once bound (port 0 picks a free one); `log`
      receives each line of the log (default: stderr).

        >>> serve_socket(  # serves until interrupted: here, until nobody came for 0.1 s
        ...     "127.0.0.1",
        ...     0,  # a free port
        ...     single_connection=True,
        ...     accept_timeout=0.1,
        ...     on_listening=lambda host, port: print("listening on", host),
        ...     log=print,
        ... )
        listening on 127.0.0.1
        nobody connected within 0.1 s: closing
    """
    if tls_key and not tls_cert:
        raise ValueError("a TLS key needs its certificate (tls_cert)")
    if tls_client_ca and not tls_cert:
        raise ValueError("client certificates (tls_client_ca) need TLS (tls_cert)")
    if secret is not None and not secret:
        raise ValueError("the secret is empty")
    authenticated = secret is not None or bool(tls_client_ca)
    if not authenticated and not allow_unauthenticated and not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host or '*'}:{port} without authentication: anyone who "
            "can connect could run code here. Give a secret (--secret-file), or TLS with "
            "client certificates (--tls-client-ca), or accept an open exec port explicitly "
            "(--allow-unauthenticated; allow_unauthenticated=True)"
        )
    tls = _server_tls_context(tls_cert, tls_key, tls_client_ca) if tls_cert else None
    log = log or _stderr_log
    if secret is not None and len(secret) < _SHORT_SECRET:
        log(
            f"warning: the secret is shorter than {_SHORT_SECRET} bytes; a recorded "
            "handshake lets an observer guess it offline"
        )
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(_BACKLOG)
        bound: Tuple[Any, ...] = listener.getsockname()
        if on_listening is not None:
            on_listening(str(bound[0]), int(bound[1]))
        server = _Server(
            listener,
            loop=loop,
            secret=secret,
            tls=tls,
            handshake_timeout=handshake_timeout,
            max_pending=max_pending,
            single_connection=single_connection,
            accept_timeout=accept_timeout,
            log=log,
        )
    except BaseException:
        listener.close()
        raise
    server.run()


def _parse_address(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8888)")
    return (host or "127.0.0.1").strip("[]"), int(port)


def read_secret_file(path: str) -> bytes:
    """The secret in `path` (surrounding whitespace stripped); ValueError if empty."""
    with open(path, "rb") as file:
        secret = file.read().strip()
    if not secret:
        raise ValueError(f"the secret file {path} is empty")
    return secret


def add_server_options(parser: Any) -> None:
    """The options both command lines share (this module's and ``execnet serve``)."""
    parser.add_argument(
        "--secret-file", metavar="FILE", help="clients must prove they know the secret in FILE"
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate (chain)")
    parser.add_argument(
        "--tls-key", metavar="PEM", help="the certificate's private key (if not in --tls-cert)"
    )
    parser.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="only clients with a certificate signed by this CA get in (mutual TLS)",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address without a secret or client certificates: "
        "anyone who can connect runs code (an open exec port)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=HANDSHAKE_TIMEOUT,
        metavar="S",
        help=f"seconds a connection gets for the whole handshake (default {HANDSHAKE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=MAX_PENDING,
        metavar="N",
        help=f"connections in the handshake at once (default {MAX_PENDING})",
    )


def server_options(args: Any) -> Dict[str, Any]:
    """serve_socket's keyword arguments from parsed options (ValueError/OSError if bad)."""
    return {
        "secret": read_secret_file(args.secret_file) if args.secret_file else None,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "allow_unauthenticated": args.allow_unauthenticated,
        "handshake_timeout": args.handshake_timeout,
        "max_pending": args.max_pending,
    }


def main(argv: Optional[List[str]] = None) -> None:
    """The command line: ``[HOST:PORT] [--secret-file FILE] [--tls-cert PEM ...]``.

    Serves until interrupted; bad arguments end it with the usage (exit status 2):

        >>> try:
        ...     main(["0.0.0.0:8888"])  # not loopback, and no secret: refused
        ... except SystemExit as exc:
        ...     print("exit status", exc.code)
        exit status 2
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m execnet_transport.socketserver",
        description="Serve execnet clients until interrupted: run the code each one sends, "
        "in a process of its own.",
    )
    parser.add_argument("address", nargs="?", default=DEFAULT_ADDRESS, help="HOST:PORT")
    add_server_options(parser)
    args = parser.parse_args(argv)
    try:
        host, port = _parse_address(args.address)
        options = server_options(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))

    def announce(bound_host: str, bound_port: int) -> None:
        print(f"listening on {bound_host}:{bound_port}", flush=True)

    try:
        serve_socket(host, port, on_listening=announce, **options)
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        parser.error(str(exc))


def _serve_for_channel(channel: Any) -> None:
    # remote_exec(this module), by socket//installvia=: one connection, proving the secret.
    secret, accept_timeout = channel.receive()

    def report(bound_host: str, bound_port: int) -> None:
        channel.send(("listening", bound_host, bound_port))

    def log(text: str) -> None:
        _stderr_log(text)  # the log: what the channel may no longer carry is there
        with contextlib.suppress(OSError):  # the channel or its connection is gone
            channel.send(("log", text))

    serve_socket(
        "127.0.0.1",
        0,
        loop=False,
        secret=secret,
        single_connection=True,
        accept_timeout=accept_timeout,
        on_listening=report,
        log=log,
    )


if __name__ == "__main__":
    main()
elif __name__ == "__channelexec__":
    _serve_for_channel(globals()["channel"])
