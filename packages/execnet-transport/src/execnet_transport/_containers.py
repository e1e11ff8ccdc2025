"""Container transports: ``docker=CONTAINER``, ``podman=CONTAINER``, ``kubectl=POD``.

Each execs a python in a running container with the bootstrap on stdio (``-i``, no
terminal), through the engine's documented command line:

- ``docker exec -i [-u USER] [-w DIR] CONTAINER <python> -c <stage>`` (podman alike),
  with ``container_user=USER`` and ``container_workdir=DIR``;
- ``kubectl exec -i [--context CTX] [-n NAMESPACE] POD [-c CONTAINER] -- <python> -c
  <stage>``, with ``kubectl_context=``, ``kubectl_namespace=``, ``kubectl_container=``.

The remote python defaults to ``python3`` (``python=`` names another, split like a shell).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ._errors import BootstrapError, HostNotFound
from ._transports import Command, StartRequest, python_command
from ._xspec import CONTAINER_KEYS, KUBECTL_KEYS, XSpec

__all__ = ["DOCKER", "KUBECTL", "PODMAN", "container_args", "kubectl_args"]

# The engine's own words, by cause (the first line that matches is quoted).
_NO_ENGINE = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "cannot connect to podman",
    "unable to connect to podman",
    "the connection to the server",
    "couldn't get current server api",
    "no configuration has been provided",
    "unable to connect to the server",
)
_NO_TARGET = ("no such container", "is not running", "notfound", "not found")
_NO_PYTHON = ("executable file not found", "no such file or directory", "command not found")


def _value(spec: XSpec, key: str) -> str:
    value = getattr(spec, key)
    if value is True or not str(value).strip() or str(value).startswith("-"):
        raise ValueError(
            f"{key} in gateway spec {str(spec)!r} needs a value that is not an option: {key}=NAME"
        )
    return str(value)


def container_args(spec: XSpec, engine: str, stage: str) -> List[str]:
    """``ENGINE exec -i [-u USER] [-w DIR] CONTAINER <python> [-B] -c <stage>``."""
    args = [engine, "exec", "-i"]
    if spec.container_user is not None:
        args += ["-u", _value(spec, "container_user")]
    if spec.container_workdir is not None:
        args += ["-w", _value(spec, "container_workdir")]
    return [*args, _value(spec, engine), *python_command(spec, stage, "python3")]


def kubectl_args(spec: XSpec, stage: str) -> List[str]:
    """``kubectl exec -i [--context C] [-n NS] POD [-c CONTAINER] -- <python> -c <stage>``."""
    args = ["kubectl", "exec", "-i"]
    if spec.kubectl_context is not None:
        args += ["--context", _value(spec, "kubectl_context")]
    if spec.kubectl_namespace is not None:
        args += ["-n", _value(spec, "kubectl_namespace")]
    args.append(_value(spec, "kubectl"))
    if spec.kubectl_container is not None:
        args += ["-c", _value(spec, "kubectl_container")]
    return [*args, "--", *python_command(spec, stage, "python3")]


def _first_line(stderr: str, words: Tuple[str, ...]) -> Optional[str]:
    for line in stderr.splitlines():
        if any(word in line.lower() for word in words):
            return line.strip()
    return None


def classify_container_failure(
    spec: XSpec, reason: str, stderr: str, status: Optional[int]
) -> BootstrapError:
    """Why the engine's exec ended early, quoting its own line."""
    engine = next(key for key in ("docker", "podman", "kubectl") if getattr(spec, key))
    line = _first_line(stderr, _NO_ENGINE)
    if line is not None:
        return BootstrapError(
            spec,
            f"{engine} cannot reach its engine or cluster: {line!r}; {reason}",
            stderr,
            status,
        )
    line = _first_line(stderr, _NO_PYTHON)
    if line is not None or status in (126, 127):
        quoted = f": {line!r}" if line else ""
        return BootstrapError(
            spec, f"the container's python did not start{quoted}; {reason}", stderr, status
        )
    line = _first_line(stderr, _NO_TARGET)
    if line is not None:
        return HostNotFound(
            spec, f"{engine} found no such target: {line!r}; {reason}", stderr, status
        )
    return BootstrapError(spec, reason, stderr, status)


class ContainerTransport:
    """``docker=CONTAINER`` / ``podman=CONTAINER``: a python in a running container."""

    keys = CONTAINER_KEYS

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def check(self, spec: XSpec) -> None:
        container_args(spec, self.engine, "")

    def start(self, request: StartRequest) -> Command:
        spec = request.spec
        return Command(
            container_args(spec, self.engine, request.stage),
            remoteaddress=str(getattr(spec, self.engine)),
            classify=classify_container_failure,
        )


class KubectlTransport:
    """``kubectl=POD``: a python in a running pod's container."""

    keys = KUBECTL_KEYS

    def check(self, spec: XSpec) -> None:
        kubectl_args(spec, "")

    def start(self, request: StartRequest) -> Command:
        spec = request.spec
        return Command(
            kubectl_args(spec, request.stage),
            remoteaddress=str(spec.kubectl),
            classify=classify_container_failure,
        )


DOCKER = ContainerTransport("docker")
PODMAN = ContainerTransport("podman")
KUBECTL = KubectlTransport()
