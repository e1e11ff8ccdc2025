"""Throwaway certificates for TLS tests and benchmarks, made with the `openssl` command.

    pki = make_pki(tmp_path)            # a CA, a server certificate for 127.0.0.1/localhost,
    pki.server_cert, pki.server_key     # a client certificate, and a second, unrelated CA
    pki.client_cert, pki.client_key     # with its own server and client certificates
    pki.ca                              # (pki.other_*) for the certificates that must fail

Every file is made at run time in the folder given (EC P-256 keys, valid for one day,
with the extensions strict verifiers want: Python 3.13 checks them by default).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List

__all__ = ["PKI", "make_pki", "openssl_available"]

_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = {usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = {names}
"""


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files make_pki wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_server_cert: Path
    other_server_key: Path
    other_client_cert: Path
    other_client_key: Path
    wrong_name_cert: Path  # signed by `ca`, for another host name only
    wrong_name_key: Path


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert, ext = folder / f"{name}.key", folder / f"{name}.pem", folder / f"{name}.ext"
    _key(key)
    ext.write_text("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n" + _CA_EXTENSIONS)
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(cert), "-days", "1",
        "-subj", f"/CN={name}", "-config", str(ext), "-extensions", "ext", "-sha256",
    )  # fmt: skip
    return cert, key


def _leaf(
    folder: Path, name: str, ca: tuple[Path, Path], usage: str, names: List[str]
) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    ext = folder / f"{name}.ext"
    _key(key)
    request = folder / f"{name}.req"
    request.write_text("[req]\ndistinguished_name = dn\n[dn]\n")
    _openssl(
        "req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        "-config", str(request),
    )  # fmt: skip
    ext.write_text(
        "[ext]\n" + _LEAF_EXTENSIONS.format(usage=usage, names=", ".join(names) or "DNS:" + name)
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-sha256",
        "-extfile", str(ext), "-extensions", "ext",
    )  # fmt: skip
    return cert, key


def make_pki(folder: Path) -> PKI:
    """Make a CA with a server and a client certificate, and a second CA likewise."""
    folder.mkdir(parents=True, exist_ok=True)
    local = ["IP:127.0.0.1", "IP:::1", "DNS:localhost"]
    ca = _ca(folder, "test-ca")
    server = _leaf(folder, "server", ca, "serverAuth", local)
    client = _leaf(folder, "client", ca, "clientAuth", [])
    wrong = _leaf(folder, "elsewhere", ca, "serverAuth", ["DNS:elsewhere.invalid"])
    other = _ca(folder, "other-ca")
    other_server = _leaf(folder, "other-server", other, "serverAuth", local)
    other_client = _leaf(folder, "other-client", other, "clientAuth", [])
    return PKI(
        ca=ca[0],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        other_ca=other[0],
        other_server_cert=other_server[0],
        other_server_key=other_server[1],
        other_client_cert=other_client[0],
        other_client_key=other_client[1],
        wrong_name_cert=wrong[0],
        wrong_name_key=wrong[1],
    )


if __name__ == "__main__":
    import sys

    print(make_pki(Path(sys.argv[1] if len(sys.argv) > 1 else "pki")))
