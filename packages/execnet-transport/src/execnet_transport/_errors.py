"""What a failed bootstrap raises: BootstrapError, and the ssh causes told apart under it."""

from __future__ import annotations

from typing import Optional

__all__ = [
    "BootstrapError",
    "HostNotFound",
    "SshError",
    "SshAuthenticationError",
    "HostKeyMismatch",
    "SshTimeout",
    "RemotePythonMissing",
]


class BootstrapError(Exception):
    """A gateway could not be started; the message names the spec and the remote's stderr.

    >>> from execnet_transport import XSpec, make_gateway
    >>> try:
    ...     make_gateway(XSpec("popen//python=/bin/false//id=gw0"))
    ... except BootstrapError as exc:
    ...     print(exc.spec, exc.returncode)
    popen//python=/bin/false//id=gw0 1
    """

    def __init__(
        self,
        spec: object,
        reason: str,
        stderr: str = "",
        returncode: Optional[int] = None,
    ) -> None:
        self.spec = spec
        self.reason = reason
        self.stderr = stderr
        self.returncode = returncode
        message = f"gateway {str(spec)!r}: {reason}"
        if stderr.strip():
            message += "\n--- the remote's stderr (last lines) ---\n" + stderr.rstrip()
        super().__init__(message)


class HostNotFound(BootstrapError):
    """ssh could not resolve or reach the host (ssh exit status 255 before the handshake).

    (Not run as a doctest: it needs ssh. tests/execnet_transport/test_ssh.py's
    test_host_not_found runs it, with OpenSSH's client.)

    >>> make_gateway(XSpec("ssh=no-such-host.invalid//id=gw0"))  # doctest: +SKIP
    Traceback (most recent call last):
    execnet_transport._errors.HostNotFound: gateway 'ssh=...': ssh could not reach the host; ...
    """


class SshError(BootstrapError):
    """ssh reached the host but the interpreter did not start: "Permission denied", or no
    such remote python. `stderr` holds ssh's own message. (Not run as a doctest: it needs
    an ssh server; test_ssh.py's test_missing_remote_python runs it against a real one.)

    >>> try:                                              # doctest: +SKIP
    ...     make_gateway(XSpec("ssh=localhost//python=no-such-python//id=gw0"))
    ... except SshError as exc:
    ...     print(exc.returncode)
    127
    """


class SshAuthenticationError(SshError):
    """The host refused every credential ssh offered ("Permission denied ...").

    ssh runs in batch mode: a host that wants a password or a passphrase fails at once.
    """


class HostKeyMismatch(SshError):
    """The host's key is not the one known for it ("Host key verification failed")."""


class SshTimeout(HostNotFound):
    """No answer from the host within ``ssh_timeout`` seconds ("Connection timed out ...").

    A HostNotFound as well: an unreachable host often shows itself this way.
    """


class RemotePythonMissing(SshError):
    """The host was reached, but its shell found no such python (exit status 127)."""
