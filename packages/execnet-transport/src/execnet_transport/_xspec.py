"""XSpec: the parsed form of a gateway spec string such as ``popen//python=pypy3//id=w1``."""

from __future__ import annotations

from typing import Any, Dict, Tuple

__all__ = ["XSpec"]

# The keys every transport takes (the bootstrap applies them on the remote).
COMMON_KEYS = (
    "id",
    "python",
    "chdir",
    "nice",
    "execmodel",
    "dont_write_bytecode",
    "via",
    "installvia",
    "max_frame",
    "forward_output",  # the forwarding and the import server run over the gateway's
    "forward_logging",  # own stream, whatever transport made it
    "imports",
)
# The keys only socket= gateways take (a shared secret, TLS: see _socket.py).
SOCKET_KEYS = ("secret_file", "tls", "tls_ca", "tls_cert", "tls_key", "tls_hostname")
# The keys ssh= gateways take besides ssh_config (see _ssh.py).
SSH_KEYS = ("ssh_port", "ssh_identity", "ssh_jump", "ssh_timeout", "ssh_strict", "ssh_share")
# The container transports' keys (see _containers.py).
CONTAINER_KEYS = ("container_user", "container_workdir")
KUBECTL_KEYS = ("kubectl_namespace", "kubectl_container", "kubectl_context")

# Every key API.md documents; they read as None when the spec does not give them: the
# built-in transports' own keys, the common ones, and what some transports read.
KNOWN_KEYS: Tuple[str, ...] = (
    "popen",
    "ssh",
    "socket",
    "vagrant_ssh",
    "docker",
    "podman",
    "kubectl",
    *COMMON_KEYS,
    "ssh_config",
    "fork",
    "sudo",
    *SOCKET_KEYS,
    *SSH_KEYS,
    *CONTAINER_KEYS,
    *KUBECTL_KEYS,
)


class XSpec:
    """A gateway specification: ``key=value`` pairs joined by ``//``.

    A key without ``=value`` means True; ``env:NAME=value`` keys collect in ``env``.
    Every key API.md names reads as None when absent, and so does any other name
    (plugins read their own keys); ``str(spec)`` is the original string, which also
    decides equality and hashing.

        >>> spec = XSpec("ssh=-p 2222 host//python=python3.12//env:LANG=C//id=w1")
        >>> spec.ssh, spec.python, spec.env, spec.id, spec.chdir
        ('-p 2222 host', 'python3.12', {'LANG': 'C'}, 'w1', None)
        >>> spec == XSpec(str(spec))
        True
    """

    popen: Any
    ssh: Any
    socket: Any
    vagrant_ssh: Any
    via: Any
    id: Any
    python: Any
    chdir: Any
    nice: Any
    execmodel: Any
    dont_write_bytecode: Any
    ssh_config: Any
    installvia: Any
    fork: Any
    forward_output: Any
    forward_logging: Any
    imports: Any
    secret_file: Any
    tls: Any
    tls_ca: Any
    tls_cert: Any
    tls_key: Any
    tls_hostname: Any
    ssh_port: Any
    ssh_identity: Any
    ssh_jump: Any
    ssh_timeout: Any
    ssh_strict: Any
    ssh_share: Any
    sudo: Any
    max_frame: Any
    docker: Any
    podman: Any
    kubectl: Any
    container_user: Any
    container_workdir: Any
    kubectl_namespace: Any
    kubectl_container: Any
    kubectl_context: Any
    env: Dict[str, str]

    def __init__(self, string: str) -> None:
        if not isinstance(string, str):
            raise TypeError(f"XSpec needs a string, not {type(string).__name__}: {string!r}")
        self._spec = string
        self.env = {}
        seen = set()
        for part in string.split("//"):
            if not part:
                raise ValueError(f"empty key in gateway spec {string!r} (a '//' too many?)")
            key, eq, value = part.partition("=")
            if not key:
                raise ValueError(f"missing key before '=' in gateway spec {string!r}")
            if key in seen:
                raise ValueError(f"duplicate key {key!r} in gateway spec {string!r}")
            seen.add(key)
            if key.startswith("env:"):
                name = key[4:]
                if not name or not eq:
                    raise ValueError(
                        f"{key!r} in gateway spec {string!r} needs the form env:NAME=value"
                    )
                self.env[name] = value
                continue
            if key.startswith("_"):
                raise AttributeError(
                    f"key {key!r} in gateway spec {string!r}: '_' keys are private"
                )
            if key == "env":
                raise ValueError(f"key 'env' in gateway spec {string!r}: use env:NAME=value")
            setattr(self, key, value if eq else True)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set: every public key reads as None when absent.
        if name.startswith("_"):
            raise AttributeError(name)
        return None

    def __str__(self) -> str:
        return self._spec

    def __repr__(self) -> str:
        return f"<XSpec {self._spec!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, XSpec):
            return NotImplemented
        return self._spec == other._spec

    def __hash__(self) -> int:
        return hash(self._spec)

    def _keys(self) -> Tuple[str, ...]:
        """The keys the spec gives (not env:, not those set to None later), in order."""
        return tuple(
            key
            for key, value in vars(self).items()
            if not key.startswith("_") and key != "env" and value is not None
        )

    def _samefilesystem(self) -> bool:
        """True when the gateway runs on this host in this directory (popen without chdir)."""
        return bool(self.popen and not self.chdir and not self.via)
