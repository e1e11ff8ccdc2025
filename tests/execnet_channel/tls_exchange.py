"""Run by each travelling interpreter: TLSConnection and TLSSocketIO, both ends here.

    python tls_exchange.py CA SERVER_CERT SERVER_KEY    # prints "ok"

A socket pair; the server side drives the non-blocking handshake as the socket server
does, the client side the waiting one; then items of every size go both ways at once,
from several threads, through a TLSSocketIO on each end, and a closed direction reads
as the end.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading

from execnet_channel import TLSConnection, TLSSocketIO

ca, cert, key = sys.argv[1:4]
server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_context.load_cert_chain(cert, key)
client_context = ssl.create_default_context(cafile=ca)
left, right = socket.socketpair()
done = {}


def serve():
    conn = TLSConnection.server(right, server_context)
    conn.setblocking(True)
    conn._waiting(conn.do_handshake)
    done["server"] = TLSSocketIO(conn, "thread")


thread = threading.Thread(target=serve)
thread.start()
client = TLSSocketIO(TLSConnection.client(left, client_context, "localhost", 30), "thread")
thread.join(30)
server = done["server"]
sizes = [1, 100, 16383, 16384, 16385, 65536, 70000, 1 << 20, 3 << 20]
payloads = [os.urandom(size) for size in sizes]
errors = []


def send(io):
    try:
        for payload in payloads:
            io.writev([len(payload).to_bytes(4, "big"), payload])
    except Exception as exc:
        errors.append(exc)


def receive(io, name):
    try:
        for payload in payloads:
            size = int.from_bytes(io.read(4), "big")
            view = memoryview(bytearray(size))
            have = 0
            while have < size:
                have += io.readinto(view[have:])
            assert bytes(view) == payload, (name, size)
    except Exception as exc:
        errors.append(exc)


threads = [
    threading.Thread(target=send, args=(client,)),
    threading.Thread(target=send, args=(server,)),
    threading.Thread(target=receive, args=(server, "server")),
    threading.Thread(target=receive, args=(client, "client")),
]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
assert not errors, errors
client.close_write()
try:
    server.read(1)
    raise AssertionError("read past the end")
except EOFError:
    pass
server.write(b"still open the other way")
assert client.read(24) == b"still open the other way"
print("ok")
