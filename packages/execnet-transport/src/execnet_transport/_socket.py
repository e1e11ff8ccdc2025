"""socket=HOST:PORT gateways: connect, authenticate (secret, TLS), bootstrap.

Without a secret or TLS the client speaks the long-standing handshake (the repr of the
first stage on one line), which execnet 2.1.2's server understands too. With
``secret_file=`` or a ``tls*`` key it speaks EXECNET-2 (see ``socketserver``): it waits
for the server's greeting, proves the secret bound to both nonces and to the code it
sends, and refuses a server that cannot prove the secret in return; with TLS the server
must present a certificate that verifies (``tls_ca=``, or the system's CAs) for the
host name, and ``tls_cert=``/``tls_key=`` present ours.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Any, Callable, List, Optional, Tuple

from execnet_channel import (
    ExecModel,
    RemoteError,
    SocketIO,
    TimeoutError,
    TLSConnection,
    TLSSocketIO,
)

from . import _bootstrap, socketserver
from ._errors import BootstrapError, HostNotFound
from ._gateway import Gateway
from ._relay import SocketRelay, relay_connection
from ._transports import Connection
from ._xspec import SOCKET_KEYS, XSpec

__all__ = ["socket_connection", "validate_socket_keys"]

# How long a client with a secret or TLS waits for the server's greeting.
CHALLENGE_TIMEOUT = 15.0
# How long a server started by installvia= waits for our connection.
INSTALLVIA_ACCEPT_TIMEOUT = 30.0
# settimeout(0) would make the socket non-blocking; past the deadline, the next read
# times out at once instead.
_LEAST_TIMEOUT = 0.001
# After a failed connection, how long its log lines may take beyond the handshake's own
# deadline to come back from an installed server (it ends soon after).
_LOG_GRACE = 5.0
_PATH_KEYS = ("secret_file", "tls_ca", "tls_cert", "tls_key", "tls_hostname")


def tls_requested(spec: XSpec) -> bool:
    """TLS is on when the spec names `tls`, a CA file or a client certificate."""
    return bool(spec.tls or spec.tls_ca or spec.tls_cert)


def validate_socket_keys(spec: XSpec, kind: str, installvia: Optional[Gateway]) -> None:
    """ValueError for socket keys that cannot work, before anything starts."""
    given = [key for key in SOCKET_KEYS if getattr(spec, key)]
    if not given:
        return
    if kind != "socket":
        raise ValueError(f"{given[0]}= in gateway spec {str(spec)!r} only works with socket")
    if installvia is not None:
        raise ValueError(
            f"{given[0]}= in gateway spec {str(spec)!r}: installvia= makes its own fresh "
            "secret for the server it starts; it takes no secret or TLS settings"
        )
    for key in _PATH_KEYS:
        if getattr(spec, key) is True:
            raise ValueError(f"{key} in gateway spec {str(spec)!r} needs a value: {key}=...")
    if spec.tls_key and not spec.tls_cert:
        raise ValueError(f"tls_key= in gateway spec {str(spec)!r} needs tls_cert=")
    if spec.tls_hostname and not tls_requested(spec):
        raise ValueError(f"tls_hostname= in gateway spec {str(spec)!r} needs TLS (tls_ca=)")


def _parse_hostport(spec: XSpec) -> Tuple[str, int]:
    host, sep, port = str(spec.socket).rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(
            f"socket={spec.socket!r} in gateway spec {str(spec)!r}: expected HOST:PORT"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def socket_connection(
    spec: XSpec,
    model: ExecModel,
    *,
    via: Optional[Gateway],
    installvia: Optional[Gateway],
    timeout: float,
) -> Connection:
    """Connect to the socket server the spec names (or start one through `installvia`),
    through `via`'s host if given, and pass its handshake: the stream then reaches the
    first stage the server runs, which waits for the bootstrap (see `TransportIO`)."""
    server: Any = None
    secret: Optional[bytes]
    if installvia is not None:
        secret = secrets.token_bytes(32)
        server, host, port = _install_server(spec, installvia, secret, timeout)
    else:
        host, port = _parse_hostport(spec)
        secret = _read_secret(spec) if spec.secret_file else None
    explain = _installed_server_log(server, installvia) if server is not None else None
    try:
        return _connect(
            spec, model, host, port, via=via, secret=secret, timeout=timeout, explain=explain
        )
    except BootstrapError as exc:
        said = explain() if explain is not None else ""
        if not said:
            raise
        reason = f"{exc.reason}; {said}"
        raise type(exc)(exc.spec, reason, exc.stderr, exc.returncode) from None


def _installed_server_log(server: Any, installvia: Optional[Gateway]) -> Callable[[], str]:
    """What the server started via `installvia` logged before it ended, once asked."""
    said: List[str] = []

    def explain() -> str:
        if not said:
            log = _server_log(server)
            via = installvia.id if installvia is not None else "?"
            said.append(f"the server started via {via!r} says: {log}" if log else "")
        return said[0]

    return explain


def _read_secret(spec: XSpec) -> bytes:
    try:
        return socketserver.read_secret_file(str(spec.secret_file))
    except OSError as exc:
        raise BootstrapError(
            spec, f"cannot read secret_file={spec.secret_file}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise BootstrapError(spec, str(exc)) from None


def _install_server(
    spec: XSpec, installvia: Gateway, secret: bytes, timeout: float
) -> Tuple[Any, str, int]:
    """Start a one-connection server through `installvia`; (its channel, host, port)."""
    channel = installvia.remote_exec(socketserver)
    channel.send((secret, INSTALLVIA_ACCEPT_TIMEOUT))
    try:
        kind, host, port = channel.receive(timeout)
    except (EOFError, RemoteError, TimeoutError, ValueError, TypeError) as exc:
        raise BootstrapError(
            spec, f"the socket server could not be started through gateway {installvia.id!r}: {exc}"
        ) from None
    if kind != "listening":
        raise BootstrapError(spec, f"the socket server via {installvia.id!r} said {kind!r}")
    return channel, str(host), int(port)


def _server_log(channel: Any) -> str:
    """What an installed server logged before it ended (it ends soon after a failure)."""
    lines: List[str] = []
    try:
        while True:
            item = channel.receive(socketserver.HANDSHAKE_TIMEOUT + _LOG_GRACE)
            if isinstance(item, tuple) and len(item) == 2 and item[0] == "log":
                lines.append(str(item[1]))
    except (EOFError, RemoteError, TimeoutError):
        pass
    return "; ".join(lines)


def _connect(
    spec: XSpec,
    model: ExecModel,
    host: str,
    port: int,
    *,
    via: Optional[Gateway],
    secret: Optional[bytes],
    timeout: float,
    explain: Optional[Callable[[], str]],
) -> Connection:
    address = f"{host}:{port}"
    context = _client_tls_context(spec) if tls_requested(spec) else None
    # TLS wraps a standard library socket; the IO then waits through the model.
    sock_module: Any = socket if context is not None else model.socket
    relay: Optional[SocketRelay] = None
    if via is not None:
        sock, relay = relay_connection(spec, sock_module, via, (host, port), timeout)
        place = f"the socket server at {address} (reached through gateway {via.id!r})"
    else:
        sock = _dial(spec, sock_module, host, port, timeout)
        place = f"the socket server at {address}"
    try:
        if context is not None:
            sock = _tls_handshake(spec, sock, context, host, address)
        stage = _bootstrap.first_stage("socket")
        if context is not None or secret is not None:
            source = stage.encode("utf-8")
            _authenticate(spec, sock, address, secret=secret, source=source, timeout=timeout)
        else:
            sock.sendall(repr(stage).encode("ascii") + b"\n")
        _read_through(spec, sock, _bootstrap.SEND_BUNDLE, address, "running the bootstrap")
        sock.settimeout(None)
        io = TLSSocketIO(sock, model) if context is not None else SocketIO(sock, model)
    except BaseException:
        sock.close()
        if relay is not None:
            relay.stop()
        raise
    return Connection(
        io,
        remoteaddress=address,
        lost_connection=f"{place} closed the connection "
        "(the server or the process serving this gateway died)",
        release=relay.stop if relay is not None else None,
        explain=explain,
    )


def _dial(spec: XSpec, sock_module: Any, host: str, port: int, timeout: float) -> Any:
    try:
        return sock_module.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            raise HostNotFound(spec, f"cannot resolve {host!r}: {exc}") from None
        raise BootstrapError(
            spec, f"cannot connect to the socket server at {host}:{port}: {exc}"
        ) from None


def _read_through(spec: XSpec, sock: Any, marker: bytes, address: str, what: str) -> None:
    """Read through `marker`; an early end or a greeting we did not expect, explained."""
    try:
        _bootstrap.read_until_marker(sock.recv, marker)
    except EOFError as exc:
        noise = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b""
        if noise.startswith(socketserver.PROTOCOL + b" "):
            auth = noise.split(b" ")[1].decode("ascii", "replace")
            raise BootstrapError(
                spec,
                f"the socket server at {address} requires authentication ({auth}): give "
                "secret_file= (and tls_ca= if it serves TLS)",
            ) from None
        raise BootstrapError(
            spec,
            f"the socket server at {address} closed the connection before {what}; "
            "see the server's log",
        ) from None
    except ConnectionResetError as exc:
        raise BootstrapError(
            spec,
            f"the socket server at {address} reset the connection before {what} ({exc}); "
            "does it want a secret or TLS (secret_file=, tls_ca=)? See the server's log",
        ) from None
    except OSError as exc:  # socket.timeout, a TLS error
        raise BootstrapError(
            spec, f"the socket server at {address} broke off before {what}: {exc}"
        ) from None


def _client_tls_context(spec: XSpec) -> Any:
    import ssl

    cafile = str(spec.tls_ca) if spec.tls_ca else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise BootstrapError(spec, f"cannot load tls_ca={cafile}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if spec.tls_cert:
        key = str(spec.tls_key) if spec.tls_key else None
        try:
            context.load_cert_chain(str(spec.tls_cert), key)
        except (OSError, ssl.SSLError) as exc:
            raise BootstrapError(
                spec, f"cannot load tls_cert={spec.tls_cert} (tls_key={key}): {exc}"
            ) from None
    return context


def _tls_handshake(spec: XSpec, sock: Any, context: Any, host: str, address: str) -> Any:
    import ssl

    name = str(spec.tls_hostname) if spec.tls_hostname else host
    try:
        return TLSConnection.client(sock, context, name, sock.gettimeout())
    except ssl.SSLCertVerificationError as exc:
        raise BootstrapError(
            spec,
            f"TLS: the certificate of the server at {address} does not verify for "
            f"{name!r}: {exc.verify_message}",
        ) from None
    except ssl.SSLError as exc:
        raise BootstrapError(
            spec, f"TLS handshake with {address} failed: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise BootstrapError(spec, f"TLS handshake with {address} failed: {exc}") from None


def _authenticate(
    spec: XSpec,
    sock: Any,
    address: str,
    *,
    secret: Optional[bytes],
    source: bytes,
    timeout: float,
) -> None:
    """The client half of EXECNET-2: greeting, our proof and code, the server's proof."""
    deadline = time.monotonic() + timeout
    line = _greeting_line(spec, sock, address)
    try:
        auth, server_nonce = socketserver.parse_greeting(line)
    except ValueError:
        raise BootstrapError(
            spec,
            f"the server at {address} sent no shared-secret challenge (got {line[:80]!r}); "
            "no secret needed?",
        ) from None
    if auth == socketserver.AUTH_SECRET and secret is None:
        raise BootstrapError(
            spec, f"the server at {address} requires a shared secret: give secret_file="
        )
    if auth == socketserver.AUTH_NONE and secret is not None:
        raise BootstrapError(
            spec,
            f"the server at {address} asks for no secret, but this spec gives secret_file=: "
            "refusing a server that cannot prove it knows the secret",
        )
    if auth not in (socketserver.AUTH_SECRET, socketserver.AUTH_NONE):
        raise BootstrapError(spec, f"the server at {address} wants {auth!r} authentication")
    client_nonce = os.urandom(socketserver.NONCE_SIZE)
    key = socketserver.session_key(secret or b"", server_nonce, client_nonce)
    sock.settimeout(max(_LEAST_TIMEOUT, deadline - time.monotonic()))
    try:
        sock.sendall(socketserver.client_hello(key, client_nonce, source))
        reply = _bootstrap.read_exactly(sock.recv, socketserver.REPLY_SIZE)
    except (EOFError, ConnectionError):  # closed, or reset with our source unread
        raise BootstrapError(
            spec,
            f"the server at {address} refused the handshake and closed the connection "
            "(wrong secret?); see the server's log",
        ) from None
    except OSError as exc:
        raise BootstrapError(spec, f"the handshake with {address} broke off: {exc}") from None
    if not socketserver.check(socketserver.server_reply(key), reply):
        raise BootstrapError(
            spec,
            f"the server at {address} did not prove it knows the secret: refusing it "
            "(someone in the middle?)",
        )
    sock.settimeout(max(_LEAST_TIMEOUT, deadline - time.monotonic()))


# The longest greeting line we read: EXECNET-2, an auth name and a 64-digit nonce take
# about 100 bytes; a server that sends more is not one of ours.
_GREETING_MAX = 256


def _greeting_line(spec: XSpec, sock: Any, address: str) -> bytes:
    sock.settimeout(CHALLENGE_TIMEOUT)
    line = b""
    try:
        while not line.endswith(b"\n") and len(line) < _GREETING_MAX:
            chunk = sock.recv(_GREETING_MAX - len(line))
            if not chunk:
                break
            line += chunk
    except socket.timeout:
        raise BootstrapError(
            spec,
            f"no shared-secret challenge from the server at {address} within "
            f"{CHALLENGE_TIMEOUT:g} s; was it started with --secret-file or TLS?",
        ) from None
    except OSError as exc:  # a TLS alert: the server refused our certificate (or none)
        reason = getattr(exc, "reason", None) or exc
        raise BootstrapError(
            spec,
            f"the server at {address} refused the connection ({reason}); does it want a "
            "client certificate (tls_cert=, tls_key=)?",
        ) from None
    if not line:
        raise BootstrapError(
            spec,
            f"the server at {address} closed the connection before its greeting; "
            "see the server's log",
        )
    return line
