"""Old module path of execnet's socket server, runnable as before.

    python -m execnet.script.socketserver [HOST:PORT] [--secret-file FILE] [--tls-cert PEM ...]

The server itself is `execnet_transport.socketserver` (without a secret or TLS the
long-standing handshake: one line holding the repr of a source string, exec'd with
`clientsock` bound; loopback only unless told --allow-unauthenticated).
"""

from __future__ import annotations

from execnet_transport.socketserver import main, serve_socket

__all__ = ["main", "serve_socket"]

if __name__ == "__main__":
    main()
