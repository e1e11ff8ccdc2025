"""One ssh host of tests/sshd.py's `sshd_hosts`: sshd in inetd mode, a network of its own.

    python sshd_inetd.py HOST PORT SSHD_CONFIG LOG [--enter NETNS] [--new-network]

It enters network namespace NETNS (a /proc/PID/ns/net path) if given, listens on
HOST:PORT there, and then, with --new-network, moves itself into a new network
namespace (its own loopback, up, and nothing else). Every accepted connection is handed
to `/usr/sbin/sshd -i -e -f SSHD_CONFIG` (sshd's inetd mode: the connection is its
stdin and stdout, its log goes to LOG), which runs where this process now is. So the
host is reached at HOST:PORT of the network it listens in, and its sessions (a
forwarded connection of ProxyJump included) live in the network behind it: a jump
host between two networks, as a bastion is. It writes "ready <pid>" on stdout once it
listens, and ends when its stdin closes (its parent ended).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import selectors
import signal
import socket
import struct
import sys

SSHD = "/usr/sbin/sshd"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}: {os.strerror(error)}")


def enter_network(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _libc_call("setns", fd, CLONE_NEWNET)
    finally:
        os.close(fd)


def new_network() -> None:
    """A new network namespace for this process, its loopback up (127.0.0.0/8 on lo)."""
    _libc_call("unshare", CLONE_NEWNET)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def main(argv: list[str]) -> None:
    host, port, config, log = argv[:4]
    rest = argv[4:]
    if "--enter" in rest:
        enter_network(rest[rest.index("--enter") + 1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(64)
    if "--new-network" in rest:
        new_network()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sessions reap themselves
    log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    sys.stdout.write(f"ready {os.getpid()}\n")
    sys.stdout.flush()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                if not os.read(sys.stdin.fileno(), 4096):
                    return
                continue
            conn, _ = listener.accept()
            with conn:
                os.posix_spawn(
                    SSHD,
                    [SSHD, "-i", "-e", "-f", config],
                    dict(os.environ),
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, conn.fileno(), 0),
                        (os.POSIX_SPAWN_DUP2, conn.fileno(), 1),
                        (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    ],
                    setsigdef=(signal.SIGCHLD,),
                )


if __name__ == "__main__":
    main(sys.argv[1:])
