"""Socket gateways: round trip and bulk bytes through a socket server, plain and TLS.

Each measured run starts a socket server process (`python -m execnet.script.socketserver`,
the path both sides have) and connects to it on 127.0.0.1; the work is that of
roundtrip.py and bulk.py. The plain cases compare with execnet 2.1.2's server and
client; the `tls_` cases run under ours only (2.1.2 has no TLS: skipped there), with a
throwaway CA and server certificate made by the `openssl` command, so their figure is
read against ours' plain one of the same run (issue 11: TLS bulk throughput at least
40 % of plain).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, List

import bulk
import roundtrip
from _harness import Measure, Skip, run_cli

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def _pki() -> object:
    sys.path.insert(0, str(ROOT))
    try:
        from tools.certs import make_pki, openssl_available
    finally:
        sys.path.remove(str(ROOT))
    if not openssl_available():
        raise Skip("the openssl command is not installed")
    return make_pki(Path(tempfile.mkdtemp(prefix="execnet-bench-pki-")))


def _tls_supported() -> None:
    import execnet

    if not hasattr(execnet, "__version__") or execnet.__version__.startswith("2.1"):
        raise Skip("execnet 2.1.2 has no TLS")


@contextlib.contextmanager
def _server(*options: str) -> Iterator[str]:
    """A socket server process on a free port of 127.0.0.1; yields its HOST:PORT."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-u", "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once it listens (both servers)
        if not line:
            raise RuntimeError("the socket server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _plain(work: Callable[[str], Measure]) -> Callable[[], Measure]:
    def case() -> Measure:
        with _server() as address:
            return work(f"socket={address}")

    return case


def _tls(work: Callable[[str], Measure]) -> Callable[[], Measure]:
    def case() -> Measure:
        _tls_supported()
        pki = _pki()
        options: List[str] = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]  # type: ignore[attr-defined]
        with _server(*options) as address:
            return work(f"socket={address}//tls_ca={pki.ca}")  # type: ignore[attr-defined]

    return case


CASES = {
    "roundtrip": _plain(roundtrip.roundtrip),
    "bulk_send": _plain(bulk.send),
    "bulk_receive": _plain(bulk.receive),
    "tls_roundtrip": _tls(roundtrip.roundtrip),
    "tls_bulk_send": _tls(bulk.send),
    "tls_bulk_receive": _tls(bulk.receive),
}

if __name__ == "__main__":
    run_cli(CASES)
