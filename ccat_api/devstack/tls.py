"""The local stack's certificate authority: one CA per stack, and server certificates it
signs for main's PostgreSQL (primary and standby), the site Redis links and gateways.

Made with the ``openssl`` command (installed wherever PostgreSQL is): the ``cryptography``
package is not a dependency of ccat_api, and the stack needs only two commands of it.
Certificates name the addresses clients dial: a site reaches main through its WAN link on
127.0.0.1, and ``sslmode=verify-full`` checks the certificate against that address, so
every certificate carries ``IP:127.0.0.1`` and ``DNS:localhost``. Private keys are written
with mode 0600, and only the CA's key stays with the stack (PostgreSQL gets a copy of its
own key, owned by the postgres user).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# What a client on this machine dials: the WAN links and every service listen on loopback.
LOOPBACK_NAMES = ("IP:127.0.0.1", "DNS:localhost")
# Long enough for a demo left running; short enough that nothing outlives its purpose.
VALID_DAYS = 30


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    # Created 0600 before anything is written to it (not chmod afterwards).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )
    path.chmod(0o600)


class CertificateAuthority:
    """``ca.crt`` (what clients trust: ``sslrootcert``) and ``ca.key`` (0600) in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def cert_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "ca.key"

    def create(self, name: str = "ccat devstack CA") -> CertificateAuthority:
        if self.cert_file.exists():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        _new_key(self.key_file)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key_file), "-out", str(self.cert_file),
            "-days", str(VALID_DAYS), "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )  # fmt: skip
        return self

    def issue(self, name: str, names: tuple[str, ...] = LOOPBACK_NAMES) -> ServerCertificate:
        """A server certificate for ``names`` (``IP:...``/``DNS:...`` subjectAltNames)."""
        cert = ServerCertificate(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        if cert.cert_file.exists():
            return cert
        _new_key(cert.key_file)
        request = self.directory / f"{name}.csr"
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName={','.join(names)}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        _openssl(
            "req", "-new", "-key", str(cert.key_file), "-out", str(request), "-subj", f"/CN={name}"
        )
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(self.cert_file),
            "-CAkey", str(self.key_file), "-CAcreateserial", "-days", str(VALID_DAYS),
            "-extfile", str(extensions), "-out", str(cert.cert_file),
        )  # fmt: skip
        request.unlink()
        extensions.unlink()
        return cert
